"""The built-in contracts' ids and the ledger keys and entries they store.

Contract ids are derived from a label (``sha256("sorotask-devnet:<label>")``), so they are the
same on every devnet. Keys and entries are built as canonical XDR (base64) with the bottom
layer's byte-level encoders (:mod:`sorotask_core`, named by :mod:`devnet.xdrfast`) where they
are written in bulk or are the SoroTask contract's own, else with stellar-sdk. The instance and
Counter keys are :mod:`sorotask_core.contract`'s.
"""

from __future__ import annotations

import hashlib

from stellar_sdk import StrKey
from stellar_sdk import xdr as sx

from devnet import xdrfast
from sorotask_core import taskconfig
from sorotask_core.xdr import SCV_LEDGER_KEY_CONTRACT_INSTANCE_VAL


def contract_id(label: str) -> str:
    """The devnet's fixed contract id for ``label``."""
    return StrKey.encode_contract(hashlib.sha256(f"sorotask-devnet:{label}".encode()).digest())


def wasm_hash(cid: str) -> bytes:
    """The (fake) wasm hash of a built-in contract's executable."""
    return hashlib.sha256(f"wasm:{cid}".encode()).digest()


def instance_entry_b64(cid: str, storage: dict[bytes, bytes] | None = None) -> str:
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
                wasm_hash=sx.Hash(wasm_hash(cid)),
            ),
            storage=entries,
        ),
    )
    key_val = SCV_LEDGER_KEY_CONTRACT_INSTANCE_VAL
    return xdrfast.b64(xdrfast.contract_data_entry(cid, key_val, inst.to_xdr_bytes()))


def instance_storage(data: bytes | None) -> dict[bytes, bytes]:
    """Instance storage (key bytes -> val bytes) of an instance entry's ``LedgerEntryData``."""
    if data is None:
        return {}
    inst = sx.LedgerEntryData.from_xdr_bytes(data).contract_data.val.instance
    if inst is None or inst.storage is None:
        return {}
    return {e.key.to_xdr_bytes(): e.val.to_xdr_bytes() for e in inst.storage.sc_map}


def _nonce_val(nonce: int) -> sx.SCVal:
    return sx.SCVal(
        type=sx.SCValType.SCV_LEDGER_KEY_NONCE, nonce_key=sx.SCNonceKey(sx.Int64(nonce))
    )


def nonce_key(address: sx.SCAddress, nonce: int) -> str:
    """``LedgerKey`` of an authorization nonce (temporary storage of the address)."""
    return sx.LedgerKey(
        type=sx.LedgerEntryType.CONTRACT_DATA,
        contract_data=sx.LedgerKeyContractData(
            contract=address,
            key=_nonce_val(nonce),
            durability=sx.ContractDataDurability.TEMPORARY,
        ),
    ).to_xdr()


def nonce_entry_b64(address: sx.SCAddress, nonce: int) -> str:
    return sx.LedgerEntryData(
        type=sx.LedgerEntryType.CONTRACT_DATA,
        contract_data=sx.ContractDataEntry(
            ext=sx.ExtensionPoint(0),
            contract=address,
            key=_nonce_val(nonce),
            durability=sx.ContractDataDurability.TEMPORARY,
            val=sx.SCVal(sx.SCValType.SCV_VOID),
        ),
    ).to_xdr()


_ENCODERS: dict[str, xdrfast.TaskEncoder] = {}


def task_encoder(cid: str) -> xdrfast.TaskEncoder:
    """The (cached) byte-level encoder of ``cid``'s task keys and entries."""
    enc = _ENCODERS.get(cid)
    if enc is None:
        enc = _ENCODERS[cid] = xdrfast.TaskEncoder(cid)
    return enc


def task_key_b64(cid: str, task_id: int) -> str:
    return xdrfast.b64(task_encoder(cid).key(task_id))


def task_entry_b64(cid: str, task_id: int, cfg: taskconfig.TaskConfig) -> str:
    val = taskconfig.encode_task_config(cfg)
    return xdrfast.b64(task_encoder(cid).entry(task_id, val))


def counter_entry_b64(cid: str, value: int) -> str:
    return xdrfast.b64(taskconfig.counter_entry(cid, value))
