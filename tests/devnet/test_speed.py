"""Fast encoders match stellar-sdk byte for byte; the devnet is fast and small at 100k tasks."""

from __future__ import annotations

import statistics
import time

import httpx
import orjson
import psutil
from stellar_sdk import Keypair, scval
from stellar_sdk import xdr as sx

from devnet import xdrfast
from devnet.process import DevnetProcess
from devnet.sorotask_contract import RESOLVER_FALSE_ID, SOROTASK_ID, TARGET_OK_ID
from tests.support import reference_contract as sc


class TestFastEncoders:
    def test_task_entry_template_equals_encode_task_config(self) -> None:
        creator, w1, w2 = (Keypair.random().public_key for _ in range(3))
        enc = xdrfast.TaskEncoder(SOROTASK_ID)
        for resolver, whitelist, gas in ((None, [], 0), (RESOLVER_FALSE_ID, [w1, w2], -(2**100))):
            args = [scval.to_uint64(3), scval.to_symbol("x")]
            cfg = sc.TaskConfig(
                creator=creator,
                target=TARGET_OK_ID,
                function="run",
                args=args,
                resolver=resolver,
                interval=2**40 + 7,
                last_run=123456789,
                gas_balance=gas,
                whitelist=whitelist,
            )
            parts = enc.parts(
                creator=creator,
                target=TARGET_OK_ID,
                function="run",
                resolver=resolver,
                whitelist=whitelist,
                args=[a.to_xdr_bytes() for a in args],
            )
            val = enc.config_val(
                gas_balance=gas, interval=cfg.interval, last_run=cfg.last_run, **parts
            )
            assert val == sc.encode_task_config(cfg).to_xdr_bytes()
            entry = sx.LedgerEntryData(
                type=sx.LedgerEntryType.CONTRACT_DATA,
                contract_data=sx.ContractDataEntry(
                    ext=sx.ExtensionPoint(0),
                    contract=sc.task_ledger_key(SOROTASK_ID, 42).contract_data.contract,
                    key=sc.task_key_scval(42),
                    durability=sx.ContractDataDurability.PERSISTENT,
                    val=sc.encode_task_config(cfg),
                ),
            )
            assert enc.entry(42, val) == entry.to_xdr_bytes()
        assert xdrfast.b64(enc.key(42)) == sc.task_ledger_key_b64(SOROTASK_ID, 42)

    def test_account_entry_equals_sdk_encoding(self) -> None:
        kp = Keypair.random()
        raw = kp.raw_public_key()
        data = sx.LedgerEntryData.from_xdr_bytes(xdrfast.account_entry(raw, 10**11, 5 << 32))
        assert data.account.account_id == kp.xdr_account_id()
        assert (data.account.balance.int64, data.account.seq_num.sequence_number.int64) == (
            10**11,
            5 << 32,
        )
        assert data.to_xdr_bytes() == xdrfast.account_entry(raw, 10**11, 5 << 32)
        key = sx.LedgerKey(
            type=sx.LedgerEntryType.ACCOUNT, account=sx.LedgerKeyAccount(kp.xdr_account_id())
        )
        assert key.to_xdr_bytes() == xdrfast.account_key(raw)

    def test_counter_key_equals_sdk_encoding(self) -> None:
        key = xdrfast.contract_data_key(SOROTASK_ID, xdrfast.counter_key_val())
        assert key == sc.counter_ledger_key(SOROTASK_ID).to_xdr_bytes()


class TestScale:
    def test_100k_tasks_seed_fast_stay_small_and_read_fast(self) -> None:
        with DevnetProcess(close_every=1.0) as dn:
            started = time.perf_counter()
            first, last = dn.seed_tasks(count=100_000)
            seed_s = time.perf_counter() - started
            assert (first, last) == (1, 100_000)
            rss_mb = psutil.Process(dn.pid).memory_info().rss / 2**20
            keys = [sc.task_ledger_key_b64(dn.info.contract_id, i) for i in range(99_801, 100_001)]
            body = orjson.dumps(
                {"jsonrpc": "2.0", "id": 1, "method": "getLedgerEntries", "params": {"keys": keys}}
            )
            timings = []
            with httpx.Client(timeout=10) as client:
                for _ in range(30):
                    t0 = time.perf_counter()
                    resp = client.post(
                        dn.info.rpc_url, content=body, headers={"content-type": "application/json"}
                    )
                    timings.append(time.perf_counter() - t0)
            assert len(resp.json()["result"]["entries"]) == 200
            median_ms = statistics.median(timings) * 1000
            print(f"\nseed 100k: {seed_s:.2f} s; RSS {rss_mb:.0f} MiB; 200 keys {median_ms:.1f} ms")
            assert seed_s < 10
            assert rss_mb < 500
            assert median_ms < 50  # typically ~1 ms; generous for a loaded CI machine
