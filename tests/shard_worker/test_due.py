"""Due logic: gas, time, whitelist."""

from __future__ import annotations

from stellar_sdk import Keypair

from shard_worker.due import skip_reason
from sorotask_core.contract import TaskInfo, sc_address_bytes

ME = sc_address_bytes(Keypair.random().public_key)
OTHER = sc_address_bytes(Keypair.random().public_key)


def info(**kw: object) -> TaskInfo:
    base: dict = {
        "interval": 60,
        "last_run": 1000,
        "gas_balance": 1,
        "whitelist": (),
        "has_resolver": False,
    }
    base.update(kw)
    return TaskInfo(**base)


class TestSkipReason:
    def test_due_exactly_at_last_run_plus_interval(self) -> None:
        assert skip_reason(info(), 1060, ME) is None

    def test_one_second_early_is_not_due(self) -> None:
        assert skip_reason(info(), 1059, ME) == "not_due"

    def test_zero_or_negative_gas_is_no_gas(self) -> None:
        assert skip_reason(info(gas_balance=0), 5000, ME) == "no_gas"
        assert skip_reason(info(gas_balance=-1), 5000, ME) == "no_gas"

    def test_whitelist_without_us_is_not_whitelisted(self) -> None:
        assert skip_reason(info(whitelist=(OTHER,)), 5000, ME) == "not_whitelisted"

    def test_whitelist_with_us_is_due(self) -> None:
        assert skip_reason(info(whitelist=(OTHER, ME)), 5000, ME) is None

    def test_never_run_task_is_due_once_interval_passed_since_zero(self) -> None:
        assert skip_reason(info(last_run=0, interval=60), 60, ME) is None
