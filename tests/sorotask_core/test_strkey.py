"""Strkeys are byte-identical to stellar-sdk's and every malformed one is refused."""

from __future__ import annotations

import pytest
from stellar_sdk import Keypair, StrKey

from sorotask_core.contract import is_valid_contract_id
from sorotask_core.strkey import (
    VERSION_ACCOUNT,
    VERSION_CONTRACT,
    VERSION_SEED,
    StrKeyError,
    decode_strkey,
    encode_strkey,
    is_valid_strkey,
)
from tests.support.ledger_entries import CONTRACT_ID


class TestStrKey:
    def test_encodings_equal_the_sdk_for_accounts_seeds_and_contracts(self) -> None:
        for _ in range(20):
            kp = Keypair.random()
            raw = kp.raw_public_key()
            assert encode_strkey(VERSION_ACCOUNT, raw) == kp.public_key
            assert encode_strkey(VERSION_SEED, kp.raw_secret_key()) == kp.secret
            assert encode_strkey(VERSION_CONTRACT, raw) == StrKey.encode_contract(raw)
            assert decode_strkey(VERSION_ACCOUNT, kp.public_key) == raw
            assert decode_strkey(VERSION_SEED, kp.secret) == kp.raw_secret_key()

    def test_checksum_version_and_length_are_checked(self) -> None:
        pub = Keypair.random().public_key
        flipped = pub[:-1] + ("A" if pub[-1] != "A" else "B")
        for bad in (flipped, pub[:-1], pub.lower(), pub + "A"):
            with pytest.raises(StrKeyError):
                decode_strkey(VERSION_ACCOUNT, bad)
        with pytest.raises(StrKeyError, match="version"):
            decode_strkey(VERSION_CONTRACT, pub)
        assert not is_valid_contract_id(pub)
        assert is_valid_contract_id(CONTRACT_ID)

    def test_errors_never_show_the_key_and_odd_input_is_refused(self) -> None:
        secret = Keypair.random().secret
        broken = secret[:-1] + ("A" if secret[-1] != "A" else "B")
        for bad in (broken, secret[:-2] + "é1", None, 5, "S" * 56):
            with pytest.raises(StrKeyError) as info:
                decode_strkey(VERSION_SEED, bad)  # type: ignore[arg-type]
            assert secret[5:-5] not in str(info.value)
            assert not is_valid_strkey(VERSION_SEED, bad)  # type: ignore[arg-type]
        assert is_valid_strkey(VERSION_SEED, secret)
        with pytest.raises(StrKeyError, match="32 bytes"):
            encode_strkey(VERSION_ACCOUNT, b"\x01" * 31)
