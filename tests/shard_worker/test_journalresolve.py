"""A restarted worker's journal (shard_worker.journalresolve), through the dispatcher that
starts it: scripted fake RPC, no network. (On the devnet, with a killed worker:
tests/shard_worker/test_journal_recovery.py.)"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from stellar_sdk import xdr as sx

from shard_worker.accounts import SourceAccount
from shard_worker.journal import Journal, JournalEntry
from tests.shard_worker.test_dispatch import make_dispatcher
from tests.shard_worker.test_executor import tx_result
from tests.support.fake_rpc import FakeRpc


class TestLookup:
    def test_a_journaled_transaction_found_applied_frees_its_account_without_its_resend(
        self, tmp_path: Path
    ) -> None:
        """getTransaction finds the journaled transaction in a ledger (the killed worker had
        not confirmed it yet): its task is done and its account free with that sequence
        number, the resend's answer (here: none) not waited for."""
        applied = {
            "status": "SUCCESS",
            "ledger": 9,
            "resultXdr": tx_result(sx.TransactionResultCode.txSUCCESS, 321),
        }

        class SilentSends(FakeRpc):
            async def call(self, method: str, params: Any = None, **kw: Any) -> Any:
                if method == "sendTransaction":
                    self.calls.append((method, params))
                    await asyncio.sleep(3600)  # cancelled once the lookup answered
                return await super().call(method, params, **kw)

        rpc = SilentSends({"getTransaction": [applied]})
        d, ex, sources = make_dispatcher(
            rpc, state_dir=tmp_path, recording=False, channels=1, max_concurrent_executions=1
        )
        channel = sources[0]
        Journal(tmp_path, "t").add(
            JournalEntry(
                hash="cd" * 32,
                task_id=77,
                source=channel.public_key,
                sequence=8,
                max_time=10**12,
                envelope="AAAA",
            )
        )
        channel.sequence, channel.needs_resync = 7, False  # as the start-up checks read it

        async def go() -> SourceAccount:
            d.start()
            released = await asyncio.wait_for(d.accounts.acquire(), 2)
            d.accounts.release(released)
            await d.drain()
            return released

        released = asyncio.run(go())
        assert released is channel
        assert (channel.sequence, channel.needs_resync) == (8, False)  # no reload needed
        assert [m for m, _ in rpc.calls] == ["sendTransaction", "getTransaction"]
        assert 77 not in d.in_flight and len(d.journal) == 0
        assert ex.tally.totals["executed"] == 1 and ex.tally.totals["fees_spent"] == 321
