"""Secret checks for the local shards: each secret is read only to validate it and derive its
public key; the value never enters a spec, a message, a log line or an error."""

from __future__ import annotations

from shard_worker.spec import SecretRef
from supervisor.config.problems import Collector, FieldPath


def public_key_of(ref: SecretRef) -> str:
    """The public key (G...) of the secret seed at ``ref``; ValueError names the problem only.

    Reads and validates exactly as a worker will (``shard_worker.secrets``), so a config that
    passes the check cannot hold a secret its worker refuses.
    """
    from shard_worker.errors import SecretError
    from shard_worker.secrets import load_keypair

    try:
        return load_keypair(ref).public_key
    except SecretError as exc:
        raise ValueError(str(exc)) from None


def check_secret(c: Collector, ref: SecretRef, path: FieldPath) -> str | None:
    """The public key of ``ref``, or None with the problem reported at ``path`` (a secret file
    readable by group or others is refused, as the worker refuses it)."""
    try:
        return public_key_of(ref)
    except ValueError as exc:
        c.error(path, str(exc))
        return None
