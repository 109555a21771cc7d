"""Stellar keys without stellar-sdk: strkey encoding and ed25519 signing with PyNaCl.

A strkey is base32 (RFC 4648, no padding) of ``version byte || payload || CRC16-XModem``
(the checksum little-endian). The keeper only handles 32-byte payloads: account ids
(``G...``), secret seeds (``S...``) and contract ids (``C...``).
"""

from __future__ import annotations

import base64
import binascii

from nacl.signing import SigningKey

__all__ = [
    "VERSION_ACCOUNT",
    "VERSION_CONTRACT",
    "VERSION_SEED",
    "Signer",
    "StrKeyError",
    "decode_strkey",
    "encode_strkey",
    "is_valid_strkey",
]

VERSION_ACCOUNT = 6 << 3  # "G"
VERSION_SEED = 18 << 3  # "S"
VERSION_CONTRACT = 2 << 3  # "C"

#: 1 version byte + 32 payload bytes + 2 checksum bytes = 35 bytes = 56 base32 characters
_STRKEY_LEN = 56


class StrKeyError(ValueError):
    """Not a valid strkey of the expected kind (the message never includes the key)."""


def _crc16_xmodem(data: bytes) -> int:
    # CRC-CCITT, polynomial 0x1021, initial value 0: binascii's crc_hqx is exactly that
    return binascii.crc_hqx(data, 0)


def encode_strkey(version: int, payload: bytes) -> str:
    """The strkey of a 32-byte ``payload`` with ``version`` (e.g. :data:`VERSION_ACCOUNT`)."""
    if len(payload) != 32:
        raise StrKeyError("strkey payload must be 32 bytes")
    body = bytes((version,)) + payload
    return base64.b32encode(body + _crc16_xmodem(body).to_bytes(2, "little")).decode("ascii")


def decode_strkey(version: int, text: str) -> bytes:
    """The 32-byte payload of ``text``; raises :class:`StrKeyError` when it is not a valid
    strkey with that version byte (bad length, alphabet, version or checksum)."""
    if not isinstance(text, str) or len(text) != _STRKEY_LEN or not text.isascii():
        raise StrKeyError("not a 56-character strkey")
    try:
        raw = base64.b32decode(text, casefold=False)
    except (binascii.Error, ValueError):
        raise StrKeyError("strkey is not base32") from None
    if raw[0] != version:
        raise StrKeyError("strkey has the wrong version byte")
    if _crc16_xmodem(raw[:-2]) != int.from_bytes(raw[-2:], "little"):
        raise StrKeyError("strkey checksum mismatch")
    return raw[1:33]


def is_valid_strkey(version: int, text: str) -> bool:
    try:
        decode_strkey(version, text)
    except StrKeyError:
        return False
    return True


class Signer:
    """An ed25519 keypair from an ``S...`` seed: signs payloads, names its ``G...`` key.

    ``repr`` never shows the seed.
    """

    __slots__ = ("_key", "public_key", "raw_public_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise StrKeyError("ed25519 seed must be 32 bytes")
        self._key = SigningKey(seed)
        self.raw_public_key: bytes = bytes(self._key.verify_key)
        self.public_key: str = encode_strkey(VERSION_ACCOUNT, self.raw_public_key)

    @classmethod
    def from_secret(cls, secret: str) -> Signer:
        return cls(decode_strkey(VERSION_SEED, secret))

    @property
    def hint(self) -> bytes:
        """The signature hint: the public key's last 4 bytes."""
        return self.raw_public_key[-4:]

    def sign(self, data: bytes) -> bytes:
        """The 64-byte ed25519 signature of ``data``."""
        return self._key.sign(data).signature

    def __repr__(self) -> str:
        return f"Signer({self.public_key})"
