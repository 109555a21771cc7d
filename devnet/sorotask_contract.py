"""A small Soroban host and the built-in contracts: SoroTask, resolvers and targets.

The :class:`Host` runs one contract invocation against the ledger with the semantics a real
Soroban host enforces where a keeper can observe them:

* storage access is recorded (simulation turns it into the footprint) or, when the
  transaction carries a footprint, enforced (an access outside it fails the invocation);
* ``require_auth`` records authorization entries (recording mode: SOURCE_ACCOUNT credentials
  for the transaction source, unsigned ADDRESS credentials for anyone else) or checks them
  (enforcing mode: ed25519 signature over the HashIDPreimage, nonce, expiration);
* errors are ``HostError``s rendered like the real host: ``Error(Contract, #2)``.

The SoroTask contract follows SOROBAN_FACTS.md. Resolver contracts implement
``check_condition(args) -> bool`` (always true, always false, panics); target contracts accept
any function name (succeeds, or panics).
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from stellar_sdk import Keypair, StrKey, scval
from stellar_sdk import xdr as sx
from stellar_sdk.exceptions import BadSignatureError

from devnet import xdrfast
from devnet.ledger import LedgerState
from sorotask_core import contract as sc
from sorotask_core import taskconfig
from sorotask_core.contract import counter_key_b64, instance_key_b64

# ---------------------------------------------------------------------------------------------
# contract ids (deterministic)


def _contract_id(label: str) -> str:
    return StrKey.encode_contract(hashlib.sha256(f"sorotask-devnet:{label}".encode()).digest())


SOROTASK_ID = _contract_id("sorotask")
RESOLVER_TRUE_ID = _contract_id("resolver-true")
RESOLVER_FALSE_ID = _contract_id("resolver-false")
RESOLVER_PANIC_ID = _contract_id("resolver-panic")
TARGET_OK_ID = _contract_id("target-ok")
TARGET_PANIC_ID = _contract_id("target-panic")
#: name used by devnet_seedTasks -> contract id
RESOLVERS = {"true": RESOLVER_TRUE_ID, "false": RESOLVER_FALSE_ID, "panic": RESOLVER_PANIC_ID}
TARGETS = {"ok": TARGET_OK_ID, "panic": TARGET_PANIC_ID}
#: fake wasm hashes of the built-in contracts' executables
WASM_HASHES = {
    cid: hashlib.sha256(f"wasm:{cid}".encode()).digest()
    for cid in (SOROTASK_ID, *RESOLVERS.values(), *TARGETS.values())
}

# effects recorded for devnet_executions
EXECUTED = "executed"
NOOP_NOT_DUE = "noop_not_due"
RESOLVER_SKIPPED = "resolver_skipped"
UNAUTHORIZED = "unauthorized"
FAILED = "failed"

TASK_VAL_OFFSET = 84  # offset of the TaskConfig ScVal inside a task's LedgerEntryData


class HostError(Exception):
    """A Soroban host error: ``Error(<type>, <code>)``."""

    def __init__(self, type_: str, code: int | str, detail: str = "") -> None:
        super().__init__(type_, code, detail)
        self.type = type_
        self.code = code
        self.detail = detail

    def __str__(self) -> str:
        code = f"#{self.code}" if isinstance(self.code, int) else self.code
        return f"Error({self.type}, {code})"

    def scval(self) -> sx.SCVal:
        etype = getattr(sx.SCErrorType, _ERR_TYPES[self.type])
        if self.type == "Contract":
            err = sx.SCError(type=etype, contract_code=sx.Uint32(int(self.code)))
        else:
            err = sx.SCError(type=etype, code=getattr(sx.SCErrorCode, _ERR_CODES[str(self.code)]))
        return sx.SCVal(type=sx.SCValType.SCV_ERROR, error=err)


_ERR_TYPES = {
    "Contract": "SCE_CONTRACT",
    "WasmVm": "SCE_WASM_VM",
    "Context": "SCE_CONTEXT",
    "Storage": "SCE_STORAGE",
    "Object": "SCE_OBJECT",
    "Crypto": "SCE_CRYPTO",
    "Events": "SCE_EVENTS",
    "Budget": "SCE_BUDGET",
    "Value": "SCE_VALUE",
    "Auth": "SCE_AUTH",
}
_ERR_CODES = {
    "ArithDomain": "SCEC_ARITH_DOMAIN",
    "IndexBounds": "SCEC_INDEX_BOUNDS",
    "InvalidInput": "SCEC_INVALID_INPUT",
    "MissingValue": "SCEC_MISSING_VALUE",
    "ExistingValue": "SCEC_EXISTING_VALUE",
    "ExceededLimit": "SCEC_EXCEEDED_LIMIT",
    "InvalidAction": "SCEC_INVALID_ACTION",
    "InternalError": "SCEC_INTERNAL_ERROR",
    "UnexpectedType": "SCEC_UNEXPECTED_TYPE",
    "UnexpectedSize": "SCEC_UNEXPECTED_SIZE",
}


def panic(message: str) -> HostError:
    """What a Rust ``panic!`` inside a contract becomes."""
    return HostError("WasmVm", "InvalidAction", message)


# ---------------------------------------------------------------------------------------------
# keys


def instance_entry_b64(contract_id: str, storage: dict[bytes, bytes] | None = None) -> str:
    """Contract instance entry: wasm executable, instance storage (key bytes -> val bytes)."""
    entries = None
    if storage:
        entries = sx.SCMap(
            [
                sx.SCMapEntry(key=sx.SCVal.from_xdr_bytes(k), val=sx.SCVal.from_xdr_bytes(v))
                for k, v in sorted(storage.items())
            ]
        )
    inst = sx.SCVal(
        type=sx.SCValType.SCV_CONTRACT_INSTANCE,
        instance=sx.SCContractInstance(
            executable=sx.ContractExecutable(
                type=sx.ContractExecutableType.CONTRACT_EXECUTABLE_WASM,
                wasm_hash=sx.Hash(WASM_HASHES[contract_id]),
            ),
            storage=entries,
        ),
    )
    key_val = sx.SCVal(sx.SCValType.SCV_LEDGER_KEY_CONTRACT_INSTANCE).to_xdr_bytes()
    return xdrfast.b64(xdrfast.contract_data_entry(contract_id, key_val, inst.to_xdr_bytes()))


def nonce_key(address: sx.SCAddress, nonce: int) -> str:
    key = sx.LedgerKey(
        type=sx.LedgerEntryType.CONTRACT_DATA,
        contract_data=sx.LedgerKeyContractData(
            contract=address,
            key=sx.SCVal(
                type=sx.SCValType.SCV_LEDGER_KEY_NONCE,
                nonce_key=sx.SCNonceKey(sx.Int64(nonce)),
            ),
            durability=sx.ContractDataDurability.TEMPORARY,
        ),
    )
    return key.to_xdr()


def nonce_entry_b64(address: sx.SCAddress, nonce: int) -> str:
    data = sx.LedgerEntryData(
        type=sx.LedgerEntryType.CONTRACT_DATA,
        contract_data=sx.ContractDataEntry(
            ext=sx.ExtensionPoint(0),
            contract=address,
            key=sx.SCVal(
                type=sx.SCValType.SCV_LEDGER_KEY_NONCE,
                nonce_key=sx.SCNonceKey(sx.Int64(nonce)),
            ),
            durability=sx.ContractDataDurability.TEMPORARY,
            val=sx.SCVal(sx.SCValType.SCV_VOID),
        ),
    )
    return data.to_xdr()


# ---------------------------------------------------------------------------------------------
# the host


@dataclass
class Footprint:
    read_only: set[str]
    read_write: set[str]


@dataclass
class AuthContext:
    """How ``require_auth`` is satisfied during one invocation."""

    source_account: str
    network_id: bytes
    #: None: recording mode; else the operation's auth entries (enforcing mode)
    entries: list[sx.SorobanAuthorizationEntry] | None
    recorded: list[sx.SorobanAuthorizationEntry] = field(default_factory=list)
    used: set[int] = field(default_factory=set)


Frame = tuple[str, str, list[sx.SCVal]]  # contract id, function, args


class Host:
    """Runs one invocation against ``ledger``; nothing is written until :meth:`commit`."""

    def __init__(
        self,
        ledger: LedgerState,
        *,
        ledger_seq: int,
        timestamp: int,
        auth: AuthContext,
        footprint: Footprint | None = None,
    ) -> None:
        self.ledger = ledger
        self.ledger_seq = ledger_seq
        self.timestamp = timestamp
        self.auth = auth
        self.footprint = footprint
        self.reads: dict[str, None] = {}  # insertion-ordered set
        self.writes: dict[str, tuple[str | None, int | None]] = {}
        self.events: list[sx.ContractEvent] = []
        self.frames: list[Frame] = []
        self.effect: str | None = None
        self.task_id: int | None = None
        self.keeper: str | None = None
        self.read_bytes = 0
        self.write_bytes = 0

    # storage -------------------------------------------------------------------------------
    def read(self, key_b64: str) -> bytes | None:
        if self.footprint is not None and (
            key_b64 not in self.footprint.read_only and key_b64 not in self.footprint.read_write
        ):
            raise HostError("Storage", "ExceededLimit", "access outside the footprint")
        if key_b64 in self.writes:
            data_b64 = self.writes[key_b64][0]
            return None if data_b64 is None else base64.b64decode(data_b64)
        self.reads[key_b64] = None
        entry = self.ledger.get(key_b64)
        if entry is None:
            return None
        if entry.live_until is not None and entry.live_until < self.ledger_seq:
            # archived: protocol 23 restores it automatically inside the invocation
            self.writes.setdefault(key_b64, (entry.data_b64, self.ledger_seq + 4095))
        data = entry.data()
        self.read_bytes += len(data)
        return data

    def write(self, key_b64: str, data_b64: str, live_until: int | None = None) -> None:
        if self.footprint is not None and key_b64 not in self.footprint.read_write:
            raise HostError("Storage", "ExceededLimit", "write outside the footprint")
        self.writes[key_b64] = (data_b64, live_until)
        self.write_bytes += len(data_b64) * 3 // 4

    def commit(self) -> None:
        for key_b64, (data_b64, live_until) in self.writes.items():
            if data_b64 is None:
                self.ledger.delete(key_b64)
            else:
                self.ledger.put(key_b64, data_b64, ledger=self.ledger_seq, live_until=live_until)

    def touched(self) -> tuple[list[str], list[str]]:
        """(read-only keys, read-write keys) in first-access order."""
        rw = list(self.writes)
        rw_set = set(rw)
        ro = [k for k in self.reads if k not in rw_set]
        return ro, rw

    # events --------------------------------------------------------------------------------
    def emit(self, contract_id: str, topics: list[sx.SCVal], data: sx.SCVal) -> None:
        self.events.append(
            sx.ContractEvent(
                ext=sx.ExtensionPoint(0),
                contract_id=sx.ContractID(sx.Hash(StrKey.decode_contract(contract_id))),
                type=sx.ContractEventType.CONTRACT,
                body=sx.ContractEventBody(v=0, v0=sx.ContractEventV0(topics=topics, data=data)),
            )
        )

    # calls ---------------------------------------------------------------------------------
    def call(self, contract_id: str, function: str, args: list[sx.SCVal]) -> sx.SCVal | bytes:
        impl = CONTRACTS.get(contract_id)
        if self.read(instance_key_b64(contract_id)) is None or impl is None:
            raise HostError("Storage", "MissingValue", f"contract {contract_id} not found")
        fn = impl.get(function)
        if fn is None:
            raise HostError("WasmVm", "MissingValue", f"function {function} not found")
        self.frames.append((contract_id, function, args))
        try:
            return fn(self, contract_id, function, args)
        finally:
            self.frames.pop()

    def try_call(
        self, contract_id: str, function: str, args: list[sx.SCVal]
    ) -> sx.SCVal | bytes | HostError:
        """``env.try_invoke_contract``: an error comes back as a value and the callee's
        storage writes are rolled back."""
        saved_writes = dict(self.writes)
        saved_events = len(self.events)
        try:
            return self.call(contract_id, function, args)
        except HostError as exc:
            if exc.type == "Storage" and exc.code == "ExceededLimit":
                raise  # footprint violations are not recoverable
            self.writes = saved_writes
            del self.events[saved_events:]
            return exc

    # auth ----------------------------------------------------------------------------------
    def require_auth(self, address: str) -> None:
        contract_id, function, args = self.frames[-1]
        invocation = sx.SorobanAuthorizedInvocation(
            function=sx.SorobanAuthorizedFunction(
                type=sx.SorobanAuthorizedFunctionType.SOROBAN_AUTHORIZED_FUNCTION_TYPE_CONTRACT_FN,
                contract_fn=sx.InvokeContractArgs(
                    contract_address=sx.SCAddress.from_xdr_bytes(xdrfast.sc_address(contract_id)),
                    function_name=sx.SCSymbol(function.encode()),
                    args=args,
                ),
            ),
            sub_invocations=[],
        )
        if self.auth.entries is None:
            self._record_auth(address, invocation)
        else:
            self._enforce_auth(address, invocation)

    def _record_auth(self, address: str, invocation: sx.SorobanAuthorizedInvocation) -> None:
        if address == self.auth.source_account:
            creds = sx.SorobanCredentials(
                type=sx.SorobanCredentialsType.SOROBAN_CREDENTIALS_SOURCE_ACCOUNT
            )
        else:
            sc_addr = sx.SCAddress.from_xdr_bytes(xdrfast.sc_address(address))
            nonce = random.randint(-(2**63), 2**63 - 1)
            if address.startswith("G"):
                self.read(
                    xdrfast.b64(xdrfast.account_key(StrKey.decode_ed25519_public_key(address)))
                )
            self.write(nonce_key(sc_addr, nonce), nonce_entry_b64(sc_addr, nonce), self.ledger_seq)
            creds = sx.SorobanCredentials(
                type=sx.SorobanCredentialsType.SOROBAN_CREDENTIALS_ADDRESS,
                address=sx.SorobanAddressCredentials(
                    address=sc_addr,
                    nonce=sx.Int64(nonce),
                    signature_expiration_ledger=sx.Uint32(0),
                    signature=sx.SCVal(sx.SCValType.SCV_VOID),
                ),
            )
        self.auth.recorded.append(
            sx.SorobanAuthorizationEntry(credentials=creds, root_invocation=invocation)
        )

    def _enforce_auth(self, address: str, invocation: sx.SorobanAuthorizedInvocation) -> None:
        want = invocation.to_xdr_bytes()
        entries = self.auth.entries or []
        for i, entry in enumerate(entries):
            if i in self.auth.used or entry.root_invocation.to_xdr_bytes() != want:
                continue
            creds = entry.credentials
            ctype = creds.type
            if ctype == sx.SorobanCredentialsType.SOROBAN_CREDENTIALS_SOURCE_ACCOUNT:
                if address != self.auth.source_account:
                    continue
                self.auth.used.add(i)
                return
            addr_creds = creds.address if creds.address is not None else creds.address_v2
            if addr_creds is None:
                continue
            if (
                scval.from_address(
                    sx.SCVal(sx.SCValType.SCV_ADDRESS, address=addr_creds.address)
                ).address
                != address
            ):
                continue
            self._verify_address_credentials(address, entry, addr_creds)
            self.auth.used.add(i)
            return
        raise HostError("Auth", "InvalidAction", f"{address} has not authorized this invocation")

    def _verify_address_credentials(
        self,
        address: str,
        entry: sx.SorobanAuthorizationEntry,
        creds: sx.SorobanAddressCredentials,
    ) -> None:
        expiration = creds.signature_expiration_ledger.uint32
        if expiration < self.ledger_seq:
            raise HostError("Auth", "InvalidAction", "signature has expired")
        if not address.startswith("G"):
            raise HostError("Auth", "InvalidAction", "only account addresses are supported")
        public_key = StrKey.decode_ed25519_public_key(address)
        if self.read(xdrfast.b64(xdrfast.account_key(public_key))) is None:
            raise HostError("Auth", "MissingValue", "account not found")
        nonce = creds.nonce.int64
        nkey = nonce_key(creds.address, nonce)
        if self.read(nkey) is not None:
            raise HostError("Auth", "ExistingValue", "nonce already used")
        network_id = sx.Hash(self.auth.network_id)
        if entry.credentials.type == sx.SorobanCredentialsType.SOROBAN_CREDENTIALS_ADDRESS:
            preimage = sx.HashIDPreimage(
                type=sx.EnvelopeType.ENVELOPE_TYPE_SOROBAN_AUTHORIZATION,
                soroban_authorization=sx.HashIDPreimageSorobanAuthorization(
                    network_id=network_id,
                    nonce=creds.nonce,
                    signature_expiration_ledger=creds.signature_expiration_ledger,
                    invocation=entry.root_invocation,
                ),
            )
        else:
            preimage = sx.HashIDPreimage(
                type=sx.EnvelopeType.ENVELOPE_TYPE_SOROBAN_AUTHORIZATION_WITH_ADDRESS,
                soroban_authorization_with_address=sx.HashIDPreimageSorobanAuthorizationWithAddress(
                    network_id=network_id,
                    nonce=creds.nonce,
                    signature_expiration_ledger=creds.signature_expiration_ledger,
                    address=creds.address,
                    invocation=entry.root_invocation,
                ),
            )
        payload = hashlib.sha256(preimage.to_xdr_bytes()).digest()
        if not _signature_ok(creds.signature, public_key, payload):
            raise HostError("Auth", "InvalidAction", "signature verification failed")
        self.write(nkey, nonce_entry_b64(creds.address, nonce), expiration)


def _signature_ok(sig: sx.SCVal, public_key: bytes, payload: bytes) -> bool:
    """Default account contract check: a Vec of {public_key, signature} maps; the master key
    (weight 1) must have signed."""
    if sig.type != sx.SCValType.SCV_VEC or sig.vec is None:
        return False
    for item in sig.vec.sc_vec:
        if item.type != sx.SCValType.SCV_MAP or item.map is None:
            return False
        fields = {}
        for e in item.map.sc_map:
            if e.key.type == sx.SCValType.SCV_SYMBOL and e.val.type == sx.SCValType.SCV_BYTES:
                fields[e.key.sym.sc_symbol.decode()] = e.val.bytes.sc_bytes
        if fields.get("public_key") != public_key:
            continue
        try:
            Keypair.from_raw_ed25519_public_key(public_key).verify(payload, fields["signature"])
        except (BadSignatureError, KeyError, ValueError):
            return False
        return True
    return False


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


VOID_VAL = sx.SCVal(sx.SCValType.SCV_VOID)


# ---------------------------------------------------------------------------------------------
# SoroTask


def task_key_b64(contract_id: str, task_id: int) -> str:
    return xdrfast.b64(_encoder(contract_id).key(task_id))


_ENCODERS: dict[str, xdrfast.TaskEncoder] = {}


def _encoder(contract_id: str) -> xdrfast.TaskEncoder:
    enc = _ENCODERS.get(contract_id)
    if enc is None:
        enc = _ENCODERS[contract_id] = xdrfast.TaskEncoder(contract_id)
    return enc


def counter_entry_b64(contract_id: str, value: int) -> str:
    return xdrfast.b64(taskconfig.counter_entry(contract_id, value))


def task_entry_b64(contract_id: str, task_id: int, cfg: taskconfig.TaskConfig) -> str:
    val = taskconfig.encode_task_config(cfg)
    return xdrfast.b64(_encoder(contract_id).entry(task_id, val))


def _load_task(host: Host, contract_id: str, task_id: int) -> taskconfig.TaskConfig | None:
    data = host.read(task_key_b64(contract_id, task_id))
    if data is None:
        return None
    return taskconfig.decode_task_config(data[TASK_VAL_OFFSET:])


def _sdk_args(cfg: taskconfig.TaskConfig) -> list[sx.SCVal]:
    return [sx.SCVal.from_xdr_bytes(a) for a in cfg.args]


def _store_task(host: Host, contract_id: str, task_id: int, cfg: taskconfig.TaskConfig) -> None:
    host.write(task_key_b64(contract_id, task_id), task_entry_b64(contract_id, task_id, cfg))


def _instance_storage(host: Host, contract_id: str) -> dict[bytes, bytes]:
    data = host.read(instance_key_b64(contract_id))
    if data is None:
        return {}
    entry = sx.LedgerEntryData.from_xdr_bytes(data)
    inst = entry.contract_data.val.instance
    if inst is None or inst.storage is None:
        return {}
    return {e.key.to_xdr_bytes(): e.val.to_xdr_bytes() for e in inst.storage.sc_map}


_TOKEN_KEY = sc.TOKEN_KEY_SCVAL


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
    count = 0 if raw is None else int.from_bytes(raw[-8:], "big")
    count += 1
    host.write(counter_key, counter_entry_b64(cid, count))
    _store_task(host, cid, count, cfg)
    host.emit(
        cid,
        [scval.to_symbol("TaskRegistered"), scval.to_uint64(count)],
        scval.to_address(cfg.creator),
    )
    return scval.to_uint64(count)


def st_get_task(host: Host, cid: str, _fn: str, args: list[sx.SCVal]) -> sx.SCVal | bytes:
    _arity(args, 1)
    task_id = _u64_arg(args, 0)
    data = host.read(task_key_b64(cid, task_id))
    if data is None:
        return VOID_VAL
    return data[TASK_VAL_OFFSET:]


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
    if cfg is None:
        raise panic("Task not found")
    if cfg.whitelist and keeper not in cfg.whitelist:
        host.effect = UNAUTHORIZED
        raise HostError("Contract", sc.ERR_UNAUTHORIZED)
    now = host.timestamp
    if now < cfg.last_run + cfg.interval:
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
    storage = _instance_storage(host, cid)
    if _TOKEN_KEY in storage:
        raise panic("Already initialized")
    storage[_TOKEN_KEY] = scval.to_address(token).to_xdr_bytes()
    host.write(instance_key_b64(cid), instance_entry_b64(cid, storage))
    return VOID_VAL


def st_get_token(host: Host, cid: str, _fn: str, args: list[sx.SCVal]) -> sx.SCVal | bytes:
    _arity(args, 0)
    token = _instance_storage(host, cid).get(_TOKEN_KEY)
    if token is None:
        raise HostError("Contract", sc.ERR_NOT_INITIALIZED)
    return token


def st_deposit_gas(host: Host, cid: str, _fn: str, args: list[sx.SCVal]) -> sx.SCVal:
    _arity(args, 3)
    task_id = _u64_arg(args, 0)
    source = _address_arg(args, 1)
    amount = _i128_arg(args, 2)
    host.require_auth(source)
    if _TOKEN_KEY not in _instance_storage(host, cid):
        raise HostError("Contract", sc.ERR_NOT_INITIALIZED)
    cfg = _load_task(host, cid, task_id)
    if cfg is None:
        raise panic("Task not found")
    cfg.gas_balance += amount
    _store_task(host, cid, task_id, cfg)
    return VOID_VAL


def st_withdraw_gas(host: Host, cid: str, _fn: str, args: list[sx.SCVal]) -> sx.SCVal:
    _arity(args, 2)
    task_id = _u64_arg(args, 0)
    amount = _i128_arg(args, 1)
    cfg = _load_task(host, cid, task_id)
    if cfg is None:
        raise panic("Task not found")
    host.require_auth(cfg.creator)
    if _TOKEN_KEY not in _instance_storage(host, cid):
        raise HostError("Contract", sc.ERR_NOT_INITIALIZED)
    if cfg.gas_balance < amount:
        raise HostError("Contract", sc.ERR_INSUFFICIENT_BALANCE)
    cfg.gas_balance -= amount
    _store_task(host, cid, task_id, cfg)
    return VOID_VAL


# ---------------------------------------------------------------------------------------------
# resolvers and targets


def _resolver(result: bool | None) -> Callable[[Host, str, str, list[sx.SCVal]], sx.SCVal]:
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


ContractFn = Callable[[Host, str, str, list[sx.SCVal]], "sx.SCVal | bytes"]
CONTRACTS: dict[str, dict[str, ContractFn]] = {
    SOROTASK_ID: {
        "register": st_register,
        "get_task": st_get_task,
        "execute": st_execute,
        "init": st_init,
        "get_token": st_get_token,
        "deposit_gas": st_deposit_gas,
        "withdraw_gas": st_withdraw_gas,
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
