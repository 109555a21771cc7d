"""Reading a shard's secret keys from where its spec says they are.

A secret lives in an environment variable or a file (never argv, never the config itself).
Errors name the variable or file, never the secret or any part of it. Like OpenSSH with a
private key, a secret file that group or others may read (or write) is refused, with the
``chmod 600`` that fixes it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from shard_worker.errors import SecretError
from shard_worker.spec import SecretRef
from sorotask_core.signing import Signer
from sorotask_core.strkey import VERSION_SEED, StrKeyError, is_valid_strkey

__all__ = ["check_file_mode", "load_keypair", "read_secret"]

#: a secret file larger than this is certainly not a seed
_MAX_FILE_BYTES = 4096


def read_secret(ref: SecretRef) -> str:
    """The raw secret text (stripped) named by ``ref``; raises :class:`SecretError`."""
    if bool(ref.env) == bool(ref.file):
        raise SecretError("secret reference must name exactly one of an env var or a file")
    if ref.env:
        value = os.environ.get(ref.env)
        if value is None:
            raise SecretError(
                f"secret environment variable {ref.env} is not set: export it with the "
                "shard's S... secret seed (never pass secrets on the command line)"
            )
        value = value.strip()
        if not value:
            raise SecretError(f"secret environment variable {ref.env} is empty")
        return value
    path = Path(str(ref.file)).expanduser()
    try:
        with path.open("rb") as fh:
            check_file_mode(path, os.fstat(fh.fileno()).st_mode)
            data = fh.read(_MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise SecretError(f"secret file {path} does not exist") from None
    except IsADirectoryError:
        raise SecretError(f"secret file {path} is a directory") from None
    except PermissionError:
        raise SecretError(f"secret file {path} is not readable by this user") from None
    except OSError as exc:
        raise SecretError(f"secret file {path} cannot be read ({exc.strerror})") from None
    if len(data) > _MAX_FILE_BYTES:
        raise SecretError(f"secret file {path} is too large to hold a secret seed")
    try:
        value = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise SecretError(f"secret file {path} is not ASCII text") from None
    if not value:
        raise SecretError(f"secret file {path} is empty")
    return value


def check_file_mode(path: Path | str, mode: int) -> None:
    """Raise :class:`SecretError` unless only the owner may access the secret file."""
    if stat.S_ISREG(mode) and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(
            f"secret file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(mode):04o}): run `chmod 600 {path}` "
            "(only its owner may read a secret seed)"
        )


def load_keypair(ref: SecretRef) -> Signer:
    """Read and validate an ``S...`` ed25519 secret seed; raises :class:`SecretError`."""
    value = read_secret(ref)
    where = ref.describe()
    if not value.startswith("S"):
        hint = " (that looks like a public key)" if value.startswith("G") else ""
        raise SecretError(f"{where} does not hold a valid Stellar secret seed (S...){hint}")
    if not is_valid_strkey(VERSION_SEED, value):
        raise SecretError(
            f"{where} does not hold a valid Stellar secret seed (S...): malformed "
            "(bad length or checksum)"
        )
    try:
        return Signer.from_secret(value)
    except (StrKeyError, ValueError):  # pragma: no cover - validated above; never echo the value
        raise SecretError(f"{where} holds an invalid Stellar secret seed") from None
