"""Secrets come from an env var or a file; errors name the place, never the secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from stellar_sdk import Keypair

from shard_worker.errors import SecretError
from shard_worker.secrets import load_keypair
from shard_worker.spec import SecretRef


class TestLoadKeypair:
    def test_env_var_seed(self, monkeypatch: pytest.MonkeyPatch) -> None:
        kp = Keypair.random()
        monkeypatch.setenv("SW_TEST_SEED", kp.secret + "\n")
        assert load_keypair(SecretRef(env="SW_TEST_SEED")).public_key == kp.public_key

    def test_file_seed(self, tmp_path: Path) -> None:
        kp = Keypair.random()
        f = tmp_path / "seed"
        f.write_text(kp.secret + "\n")
        f.chmod(0o600)
        assert load_keypair(SecretRef(file=str(f))).public_key == kp.public_key

    def test_missing_env_var_names_it(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("SW_NOPE", raising=False)
        with pytest.raises(SecretError, match="SW_NOPE"):
            load_keypair(SecretRef(env="SW_NOPE"))

    def test_malformed_seed_message_has_no_secret(self, monkeypatch: pytest.MonkeyPatch) -> None:
        bad = Keypair.random().secret[:-2] + "AA"
        monkeypatch.setenv("SW_BAD", bad)
        with pytest.raises(SecretError) as err:
            load_keypair(SecretRef(env="SW_BAD"))
        assert "SW_BAD" in str(err.value)
        assert bad not in str(err.value) and bad[:10] not in str(err.value)

    def test_public_key_instead_of_seed_is_explained(self, monkeypatch: pytest.MonkeyPatch) -> None:
        pub = Keypair.random().public_key
        monkeypatch.setenv("SW_PUB", pub)
        with pytest.raises(SecretError, match="public key") as err:
            load_keypair(SecretRef(env="SW_PUB"))
        assert pub not in str(err.value)

    def test_missing_file_names_it(self, tmp_path: Path) -> None:
        with pytest.raises(SecretError, match="does not exist"):
            load_keypair(SecretRef(file=str(tmp_path / "absent")))

    def test_empty_file(self, tmp_path: Path) -> None:
        f = tmp_path / "empty"
        f.write_text("\n")
        f.chmod(0o600)
        with pytest.raises(SecretError, match="empty"):
            load_keypair(SecretRef(file=str(f)))

    @pytest.mark.parametrize("mode", [0o644, 0o640, 0o440, 0o604, 0o660, 0o610])
    def test_file_open_to_group_or_others_is_refused_like_openssh(
        self, tmp_path: Path, mode: int
    ) -> None:
        kp = Keypair.random()
        f = tmp_path / "seed"
        f.write_text(kp.secret + "\n")
        f.chmod(mode)
        with pytest.raises(SecretError) as err:
            load_keypair(SecretRef(file=str(f)))
        assert f"run `chmod 600 {f}`" in str(err.value)
        assert kp.secret not in str(err.value)
        f.chmod(0o400)  # owner read-only is fine too
        assert load_keypair(SecretRef(file=str(f))).public_key == kp.public_key

    def test_reference_needs_exactly_one_place(self) -> None:
        with pytest.raises(SecretError):
            load_keypair(SecretRef())
