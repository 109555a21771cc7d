"""ed25519 signing and the network id equal stellar-sdk's."""

from __future__ import annotations

import pytest
from stellar_sdk import Keypair, Network

from sorotask_core.signing import Signer, network_id
from sorotask_core.strkey import StrKeyError


class TestSigner:
    def test_public_key_hint_and_signature_equal_the_sdk(self) -> None:
        kp = Keypair.random()
        signer = Signer.from_secret(kp.secret)
        assert signer.public_key == kp.public_key
        assert signer.hint == kp.signature_hint()
        assert signer.sign(b"payload") == kp.sign(b"payload")
        assert kp.secret not in repr(signer)

    def test_raw_seed_and_bad_seeds(self) -> None:
        kp = Keypair.random()
        signer = Signer(kp.raw_secret_key())
        assert signer.raw_public_key == kp.raw_public_key()
        kp.verify(b"x", signer.sign(b"x"))  # raises if the signature is wrong
        with pytest.raises(StrKeyError):
            Signer(b"\x01" * 31)
        with pytest.raises(StrKeyError):
            Signer.from_secret(kp.public_key)


class TestNetworkId:
    def test_equals_the_sdk(self) -> None:
        for passphrase in (Network.PUBLIC_NETWORK_PASSPHRASE, Network.TESTNET_NETWORK_PASSPHRASE):
            assert network_id(passphrase) == Network(passphrase).network_id()
