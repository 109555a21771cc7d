"""Due logic: gas, time, whitelist; the ledger-entries path's rule and the compact task
state's agree (u64 wrap included) and match the devnet's model of the contract."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from stellar_sdk import Keypair

from devnet.sorotask_contract import wrapping_add_u64
from shard_worker.due import skip_reason
from shard_worker.taskstate import TaskState
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

    def test_last_run_plus_interval_wraps_at_two_to_the_64_as_the_contract_does(self) -> None:
        # 2^64 - 10 + 20 wraps to 10 in lib.rs's release build: due from close time 10 on
        wrapped = info(last_run=2**64 - 10, interval=20)
        assert wrapped.next_run == 10
        assert skip_reason(wrapped, 10, ME) is None
        assert skip_reason(wrapped, 9, ME) == "not_due"
        assert skip_reason(info(last_run=2**64 - 1, interval=1), 0, ME) is None


U64 = st.integers(min_value=0, max_value=2**64 - 1)
#: values near the wrap as often as anywhere else
NEAR_WRAP = st.integers(min_value=2**64 - 2**20, max_value=2**64 - 1)


@settings(max_examples=400, deadline=None)
@given(
    last_run=st.one_of(U64, NEAR_WRAP),
    interval=st.one_of(U64, NEAR_WRAP, st.integers(min_value=1, max_value=2**20)),
    ledger_time=st.one_of(U64, st.integers(min_value=0, max_value=2**21)),
    gas=st.integers(min_value=-5, max_value=5),
    whitelist=st.sampled_from([(), (ME,), (OTHER,), (OTHER, ME)]),
)
def test_both_due_rules_agree_with_each_other_and_the_contract(
    last_run: int, interval: int, ledger_time: int, gas: int, whitelist: tuple[bytes, ...]
) -> None:
    task = info(last_run=last_run, interval=interval, gas_balance=gas, whitelist=whitelist)
    state = TaskState(first=1, count=1)
    state.record_info(1, task, ME, live_until=None, entry_hash=0)
    reason = skip_reason(task, ledger_time, ME)
    assert state.skip_reason(1, ledger_time, ledger_seq=1) == reason
    if gas > 0:  # the devnet's contract refuses execute before the wrapped sum, as lib.rs does
        assert (reason == "not_due") == (ledger_time < wrapping_add_u64(last_run, interval))
