"""The built-in contracts: SoroTask, resolvers and targets, run by :class:`devnet.host.Host`.

The SoroTask contract follows SOROBAN_FACTS.md ("The SoroTask contract" and "Events of the
SoroTask contract"), including lib.rs's order of checks, its events and its panics. Resolver
contracts implement ``check_condition(args) -> bool`` (always true, always false, panics);
target contracts accept any function name (succeeds, or panics).
"""

from __future__ import annotations

from collections.abc import Callable

from stellar_sdk import scval
from stellar_sdk import xdr as sx

from devnet.host import ContractFn, Host, HostError, panic
from devnet.ledger import LedgerState
from devnet.storage import (
    contract_id,
    counter_entry_b64,
    instance_entry_b64,
    instance_storage,
    task_entry_b64,
    task_key_b64,
)
from sorotask_core import contract as sc
from sorotask_core import taskconfig
from sorotask_core.contract import (
    EVENT_GAS_DEPOSITED,
    EVENT_GAS_WITHDRAWN,
    EVENT_TASK_REGISTERED,
    TASK_ENTRY_VAL_OFFSET,
    counter_key_b64,
    decode_counter_data,
    instance_key_b64,
)

SOROTASK_ID = contract_id("sorotask")
RESOLVER_TRUE_ID = contract_id("resolver-true")
RESOLVER_FALSE_ID = contract_id("resolver-false")
RESOLVER_PANIC_ID = contract_id("resolver-panic")
TARGET_OK_ID = contract_id("target-ok")
TARGET_PANIC_ID = contract_id("target-panic")
#: name used by devnet_seedTasks -> contract id
RESOLVERS = {"true": RESOLVER_TRUE_ID, "false": RESOLVER_FALSE_ID, "panic": RESOLVER_PANIC_ID}
TARGETS = {"ok": TARGET_OK_ID, "panic": TARGET_PANIC_ID}

# effects recorded for devnet_executions
EXECUTED = "executed"
NOOP_NOT_DUE = "noop_not_due"
RESOLVER_SKIPPED = "resolver_skipped"
UNAUTHORIZED = "unauthorized"
FAILED = "failed"

U64_MOD = 2**64
I128_MOD = 2**128

# ---------------------------------------------------------------------------------------------
# argument helpers


def _arg(args: list[sx.SCVal], i: int, kind: sx.SCValType) -> sx.SCVal:
    if i >= len(args) or args[i].type != kind:
        raise HostError("Value", "UnexpectedType", f"argument {i} must be {kind.name}")
    return args[i]


def _arity(args: list[sx.SCVal], n: int) -> None:
    if len(args) != n:
        raise HostError("WasmVm", "InvalidAction", f"expected {n} arguments, got {len(args)}")


def _address_arg(args: list[sx.SCVal], i: int) -> str:
    return scval.from_address(_arg(args, i, sx.SCValType.SCV_ADDRESS)).address


def _u64_arg(args: list[sx.SCVal], i: int) -> int:
    return _arg(args, i, sx.SCValType.SCV_U64).u64.uint64


def _i128_arg(args: list[sx.SCVal], i: int) -> int:
    return scval.from_int128(_arg(args, i, sx.SCValType.SCV_I128))


def wrapping_add_u64(a: int, b: int) -> int:
    """``a + b`` on u64 without overflow checks (lib.rs's release build)."""
    return (a + b) % U64_MOD


def wrapping_i128(value: int) -> int:
    """``value`` wrapped into i128 (release build: arithmetic without overflow checks)."""
    value %= I128_MOD
    return value - I128_MOD if value >= I128_MOD // 2 else value


VOID_VAL = sx.SCVal(sx.SCValType.SCV_VOID)

# ---------------------------------------------------------------------------------------------
# SoroTask


def _load_task(host: Host, cid: str, task_id: int) -> taskconfig.TaskConfig:
    """The task, or the contract's panic "Task not found"."""
    data = host.read(task_key_b64(cid, task_id))
    if data is None:
        raise panic("Task not found")
    return taskconfig.decode_task_config(data[TASK_ENTRY_VAL_OFFSET:])


def _sdk_args(cfg: taskconfig.TaskConfig) -> list[sx.SCVal]:
    return [sx.SCVal.from_xdr_bytes(a) for a in cfg.args]


def _store_task(host: Host, cid: str, task_id: int, cfg: taskconfig.TaskConfig) -> None:
    host.write(task_key_b64(cid, task_id), task_entry_b64(cid, task_id, cfg))


_TOKEN_KEY = sc.TOKEN_KEY_SCVAL


def _token(host: Host, cid: str) -> bytes:
    """The token address (ScVal bytes), or the contract's panic "Not initialized"."""
    token = instance_storage(host.read(instance_key_b64(cid))).get(_TOKEN_KEY)
    if token is None:
        raise panic("Not initialized")
    return token


def _gas_event(host: Host, cid: str, name: str, task_id: int, address: str, amount: int) -> None:
    """(Symbol name, task_id: u64) with data (address, amount: i128), as lib.rs emits it."""
    host.emit(
        cid,
        [scval.to_symbol(name), scval.to_uint64(task_id)],
        scval.to_vec([scval.to_address(address), scval.to_int128(amount)]),
    )


def st_register(host: Host, cid: str, _fn: str, args: list[sx.SCVal]) -> sx.SCVal:
    _arity(args, 1)
    try:
        cfg = taskconfig.decode_task_config(_arg(args, 0, sx.SCValType.SCV_MAP).to_xdr_bytes())
    except (ValueError, AttributeError, TypeError) as exc:
        raise HostError("Value", "UnexpectedType", f"bad TaskConfig: {exc}") from exc
    host.require_auth(cfg.creator)
    if cfg.interval == 0:
        raise HostError("Contract", sc.ERR_INVALID_INTERVAL)
    counter_key = counter_key_b64(cid)
    raw = host.read(counter_key)
    count = 0 if raw is None else decode_counter_data(raw)
    count = wrapping_add_u64(count, 1)
    host.write(counter_key, counter_entry_b64(cid, count))
    _store_task(host, cid, count, cfg)
    host.emit(
        cid,
        [scval.to_symbol(EVENT_TASK_REGISTERED), scval.to_uint64(count)],
        scval.to_address(cfg.creator),
    )
    return scval.to_uint64(count)


def st_get_task(host: Host, cid: str, _fn: str, args: list[sx.SCVal]) -> sx.SCVal | bytes:
    _arity(args, 1)
    task_id = _u64_arg(args, 0)
    data = host.read(task_key_b64(cid, task_id))
    if data is None:
        return VOID_VAL
    return data[TASK_ENTRY_VAL_OFFSET:]


def st_execute(host: Host, cid: str, _fn: str, args: list[sx.SCVal]) -> sx.SCVal:
    _arity(args, 2)
    keeper = _address_arg(args, 0)
    task_id = _u64_arg(args, 1)
    host.keeper = keeper
    host.task_id = task_id
    host.effect = UNAUTHORIZED
    host.require_auth(keeper)
    host.effect = FAILED
    cfg = _load_task(host, cid, task_id)
    if cfg.whitelist and keeper not in cfg.whitelist:
        host.effect = UNAUTHORIZED
        raise HostError("Contract", sc.ERR_UNAUTHORIZED)
    now = host.timestamp
    if now < wrapping_add_u64(cfg.last_run, cfg.interval):
        host.effect = NOOP_NOT_DUE
        return VOID_VAL
    if cfg.resolver:
        outcome = host.try_call(cfg.resolver, "check_condition", [scval.to_vec(_sdk_args(cfg))])
        ok = isinstance(outcome, sx.SCVal) and outcome.type == sx.SCValType.SCV_BOOL and outcome.b
        if not ok:
            host.effect = RESOLVER_SKIPPED
            return VOID_VAL
    host.call(cfg.target, cfg.function, _sdk_args(cfg))
    cfg.last_run = now
    _store_task(host, cid, task_id, cfg)
    host.effect = EXECUTED
    return VOID_VAL


def st_init(host: Host, cid: str, _fn: str, args: list[sx.SCVal]) -> sx.SCVal:
    _arity(args, 1)
    token = _address_arg(args, 0)
    storage = instance_storage(host.read(instance_key_b64(cid)))
    if _TOKEN_KEY in storage:
        raise panic("Already initialized")
    storage[_TOKEN_KEY] = scval.to_address(token).to_xdr_bytes()
    host.write(instance_key_b64(cid), instance_entry_b64(cid, storage))
    return VOID_VAL


def st_get_token(host: Host, cid: str, _fn: str, args: list[sx.SCVal]) -> bytes:
    _arity(args, 0)
    return _token(host, cid)


def st_deposit_gas(host: Host, cid: str, _fn: str, args: list[sx.SCVal]) -> sx.SCVal:
    """lib.rs: from.require_auth(); task ("Task not found"); token ("Not initialized");
    transfer from -> contract; gas_balance += amount; event GasDeposited."""
    _arity(args, 3)
    task_id = _u64_arg(args, 0)
    source = _address_arg(args, 1)
    amount = _i128_arg(args, 2)
    host.require_auth(source)
    cfg = _load_task(host, cid, task_id)
    _token(host, cid)  # the devnet moves no tokens (see devnet/README.md)
    cfg.gas_balance = wrapping_i128(cfg.gas_balance + amount)
    _store_task(host, cid, task_id, cfg)
    _gas_event(host, cid, EVENT_GAS_DEPOSITED, task_id, source, amount)
    return VOID_VAL


def st_withdraw_gas(host: Host, cid: str, _fn: str, args: list[sx.SCVal]) -> sx.SCVal:
    """lib.rs: task ("Task not found"); creator.require_auth(); Error 3 if the balance is
    below amount; token ("Not initialized"); transfer contract -> creator; event GasWithdrawn."""
    _arity(args, 2)
    task_id = _u64_arg(args, 0)
    amount = _i128_arg(args, 1)
    cfg = _load_task(host, cid, task_id)
    host.require_auth(cfg.creator)
    if cfg.gas_balance < amount:
        raise HostError("Contract", sc.ERR_INSUFFICIENT_BALANCE)
    _token(host, cid)
    cfg.gas_balance = wrapping_i128(cfg.gas_balance - amount)
    _store_task(host, cid, task_id, cfg)
    _gas_event(host, cid, EVENT_GAS_WITHDRAWN, task_id, cfg.creator, amount)
    return VOID_VAL


# ---------------------------------------------------------------------------------------------
# resolvers and targets


def _resolver(result: bool | None) -> ContractFn:
    def check_condition(host: Host, cid: str, fn: str, args: list[sx.SCVal]) -> sx.SCVal:
        if result is None:
            raise panic("resolver panicked")
        return scval.to_bool(result)

    return check_condition


class _AnyFunction(dict):
    """A contract whose every function name resolves to the same behaviour."""

    def __init__(self, fn: Callable[[Host, str, str, list[sx.SCVal]], sx.SCVal]) -> None:
        super().__init__()
        self._fn = fn

    def get(self, _name: str, _default: object = None) -> Callable[..., sx.SCVal]:  # type: ignore[override]
        return self._fn


def _target_ok(host: Host, cid: str, fn: str, args: list[sx.SCVal]) -> sx.SCVal:
    return VOID_VAL


def _target_panic(host: Host, cid: str, fn: str, args: list[sx.SCVal]) -> sx.SCVal:
    raise panic("target panicked")


CONTRACTS: dict[str, dict[str, ContractFn]] = {
    SOROTASK_ID: {
        sc.FN_REGISTER: st_register,
        sc.FN_GET_TASK: st_get_task,
        sc.FN_EXECUTE: st_execute,
        sc.FN_INIT: st_init,
        sc.FN_GET_TOKEN: st_get_token,
        sc.FN_DEPOSIT_GAS: st_deposit_gas,
        sc.FN_WITHDRAW_GAS: st_withdraw_gas,
    },
    RESOLVER_TRUE_ID: {"check_condition": _resolver(True)},
    RESOLVER_FALSE_ID: {"check_condition": _resolver(False)},
    RESOLVER_PANIC_ID: {"check_condition": _resolver(None)},
    TARGET_OK_ID: _AnyFunction(_target_ok),
    TARGET_PANIC_ID: _AnyFunction(_target_panic),
}


def install_contracts(ledger: LedgerState) -> None:
    """Write the instance entries of every built-in contract."""
    for cid in CONTRACTS:
        ledger.put(instance_key_b64(cid), instance_entry_b64(cid))
