"""A small Soroban host: runs one contract invocation against the ledger.

It enforces what a real Soroban host enforces where a keeper can observe it:

* storage access is recorded (simulation turns it into the footprint) or, when the
  transaction carries a footprint, enforced (an access outside it fails the invocation);
* an archived persistent entry (TTL passed) is restored inside the invocation as protocol 23
  does: simulation puts it in the read-write footprint and reports it (``restored``), a
  transaction may restore only the entries it marks in ``archivedSorobanEntries``; an expired
  temporary entry reads as absent;
* ``require_auth`` records authorization entries (recording mode: SOURCE_ACCOUNT credentials
  for the transaction source, unsigned ADDRESS credentials for anyone else) or checks them
  (enforcing mode: ed25519 signature over the HashIDPreimage, nonce, expiration);
* errors are ``HostError``s rendered like the real host: ``Error(Contract, #2)``.

The contracts themselves are plain functions (see :mod:`devnet.sorotask_contract`).
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from stellar_sdk import Keypair, StrKey, scval
from stellar_sdk import xdr as sx
from stellar_sdk.exceptions import BadSignatureError

from devnet import xdrfast
from devnet.archival import RESTORED_TTL_LEDGERS, is_archived, is_temporary
from devnet.ledger import LedgerState
from devnet.storage import nonce_entry_b64, nonce_key
from sorotask_core.contract import instance_key_b64


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


@dataclass
class Footprint:
    read_only: set[str]
    read_write: set[str]
    #: archived entries the transaction marks for restoration (``archivedSorobanEntries``)
    restore: set[str] = field(default_factory=set)


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
ContractFn = Callable[["Host", str, str, list[sx.SCVal]], "sx.SCVal | bytes"]


class Host:
    """Runs one invocation against ``ledger``; nothing is written until :meth:`commit`."""

    def __init__(
        self,
        ledger: LedgerState,
        *,
        ledger_seq: int,
        timestamp: int,
        auth: AuthContext,
        contracts: Mapping[str, Mapping[str, ContractFn]],
        footprint: Footprint | None = None,
    ) -> None:
        self.ledger = ledger
        self.ledger_seq = ledger_seq
        self.timestamp = timestamp
        self.auth = auth
        self.contracts = contracts
        self.footprint = footprint
        self.reads: dict[str, None] = {}  # insertion-ordered set
        self.writes: dict[str, tuple[str | None, int | None]] = {}
        #: archived entries this invocation restored (insertion-ordered set)
        self.restored: dict[str, None] = {}
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
        if is_archived(entry, self.ledger_seq):
            if is_temporary(key_b64):
                return None  # an expired temporary entry is gone
            self._restore(key_b64, entry.data_b64)
        data = entry.data()
        self.read_bytes += len(data)
        return data

    def _restore(self, key_b64: str, data_b64: str) -> None:
        """Protocol 23 restores an archived persistent entry inside the invocation: it must
        be in the read-write footprint and, in a transaction, marked for restoration."""
        fp = self.footprint
        if fp is not None and (key_b64 not in fp.read_write or key_b64 not in fp.restore):
            raise HostError("Storage", "MissingValue", "entry is archived")
        self.restored[key_b64] = None
        self.writes.setdefault(key_b64, (data_b64, self.ledger_seq + RESTORED_TTL_LEDGERS - 1))
        self.write_bytes += len(data_b64) * 3 // 4

    def write(self, key_b64: str, data_b64: str, live_until: int | None = None) -> None:
        if self.footprint is not None and key_b64 not in self.footprint.read_write:
            raise HostError("Storage", "ExceededLimit", "write outside the footprint")
        if live_until is None and key_b64 in self.restored:
            live_until = self.writes[key_b64][1]  # a restored entry keeps its new TTL
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
        impl = self.contracts.get(contract_id)
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
