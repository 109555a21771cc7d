"""ed25519 signing with PyNaCl, and the network id signatures commit to (no stellar-sdk)."""

from __future__ import annotations

import hashlib

from nacl.signing import SigningKey

from sorotask_core.strkey import (
    VERSION_ACCOUNT,
    VERSION_SEED,
    StrKeyError,
    decode_strkey,
    encode_strkey,
)

__all__ = ["Signer", "network_id"]


def network_id(passphrase: str) -> bytes:
    """SHA-256 of the network passphrase."""
    return hashlib.sha256(passphrase.encode()).digest()


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
