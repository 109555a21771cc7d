"""The dry run (``sorotask run --dry-run``): read, classify and simulate, never sign or send.

The keeper's account is the only source (a channel account would need the keeper's signature
on the auth entry); it is a :class:`WatchOnly` key, which has a public key and no way to sign,
so nothing can be signed even by mistake. Each due task whose simulation writes it is reported
once as a ``would_execute`` event with the fee a real run would offer (inclusion fee plus the
simulated resource fee; channel accounts add a little for the signature check), counted in
``would_execute`` and ``dry_run_fees``, and listed in the worker's goodbye.
"""

from __future__ import annotations

from typing import Any

from shard_worker.context import Events, Tally
from shard_worker.errors import FatalConfigError
from sorotask_core.strkey import VERSION_ACCOUNT, StrKeyError, decode_strkey

__all__ = ["MAX_LISTED", "DryRun", "WatchOnly"]

#: would-execute entries listed in the goodbye (the rest are only counted)
MAX_LISTED = 1000


class WatchOnly:
    """A public key standing in for a keypair: names the account, refuses to sign."""

    __slots__ = ("public_key", "raw_public_key")

    def __init__(self, public_key: str) -> None:
        try:
            self.raw_public_key: bytes = decode_strkey(VERSION_ACCOUNT, public_key)
        except StrKeyError:
            raise FatalConfigError(
                f"public_key {public_key!r} is not a valid Stellar public key (G...)"
            ) from None
        self.public_key = public_key

    @property
    def hint(self) -> bytes:
        return self.raw_public_key[-4:]

    def sign(self, data: bytes) -> bytes:
        raise RuntimeError("dry run: nothing is ever signed")

    def __repr__(self) -> str:
        return f"WatchOnly({self.public_key})"


class DryRun:
    """What a dry run would have executed: each task once, with its fee."""

    __slots__ = ("events", "fees", "tally", "would")

    def __init__(self, tally: Tally, events: Events) -> None:
        self.tally = tally
        self.events = events
        #: task id -> fee (stroops), in the order first seen
        self.would: dict[int, int] = {}
        self.fees = 0

    def seen(self, task_id: int) -> bool:
        return task_id in self.would

    def would_execute(self, task_id: int, fee: int, resource_fee: int, ledger: int) -> None:
        """The simulation at ``ledger`` writes the task: a real run would send it for
        ``fee``; counted and reported (a ``would_execute`` event)."""
        self.would[task_id] = fee
        self.fees += fee
        self.tally.cycle.would_execute += 1
        self.tally.cycle.dry_run_fees += fee
        data = {"task_id": task_id, "fee": fee, "resource_fee": resource_fee, "ledger": ledger}
        self.events.event("would_execute", data)

    def final(self) -> dict[str, Any]:
        """The goodbye's dry-run part."""
        listed = list(self.would.items())[:MAX_LISTED]
        return {
            "dry_run": True,
            "would_execute_count": len(self.would),
            "would_execute_fees": self.fees,
            "would_execute": [[task_id, fee] for task_id, fee in listed],
        }
