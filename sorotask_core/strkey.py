"""Stellar strkeys without stellar-sdk: encode, decode and validate.

A strkey is base32 (RFC 4648, no padding) of ``version byte || payload || CRC16-XModem``
(the checksum little-endian). The project only handles 32-byte payloads: account ids
(``G...``), secret seeds (``S...``) and contract ids (``C...``).
"""

from __future__ import annotations

import base64
import binascii

__all__ = [
    "VERSION_ACCOUNT",
    "VERSION_CONTRACT",
    "VERSION_SEED",
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
