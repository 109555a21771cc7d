"""TTL and archival, as protocol 23 has them.

An entry whose ``liveUntilLedgerSeq`` is below the current ledger has expired. An expired
*temporary* entry is gone (getLedgerEntries omits it, contracts read nothing). An expired
*persistent* entry is archived: getLedgerEntries returns it with ``liveUntilLedgerSeq`` 0,
simulation restores it inside the invocation (it lands in the read-write footprint and its
index in ``SorobanTransactionData`` ext v1 ``archivedSorobanEntries``), and a transaction
restores exactly the entries it marks there; one whose footprint holds an archived entry it
does not mark fails with ``INVOKE_HOST_FUNCTION_ENTRY_ARCHIVED``.

``devnet_expireEntries`` ends the TTL of chosen entries (the devnet's entries otherwise live
about four months of ledgers).
"""

from __future__ import annotations

import base64
from typing import Any

from stellar_sdk import xdr as sx

from devnet.ledger import Entry, LedgerState
from devnet.storage import task_key_b64

#: the TTL a restored entry gets: the network's minimum persistent TTL
RESTORED_TTL_LEDGERS = 4096
#: at most this many entries per devnet_expireEntries call
MAX_EXPIRE = 200_000

_CONTRACT_DATA = (6).to_bytes(4, "big")
_TEMPORARY = (0).to_bytes(4, "big")


class ExpireParamError(ValueError):
    pass


def is_temporary(key_b64: str) -> bool:
    """A ``LedgerKey`` of temporary contract data (its last word is the durability)."""
    raw = base64.b64decode(key_b64)
    return raw[:4] == _CONTRACT_DATA and raw[-4:] == _TEMPORARY


def is_archived(entry: Entry, ledger_seq: int) -> bool:
    """Expired at ``ledger_seq`` (an entry without a TTL, an account, never expires)."""
    return entry.live_until is not None and entry.live_until < ledger_seq


def restorable(
    get: Any, data: sx.SorobanTransactionData, ledger_seq: int
) -> tuple[set[str], set[str]]:
    """(entries the transaction marks for restoration, archived persistent entries of its
    footprint that it does not mark). ``get(key_b64)`` reads the ledger."""
    fp = data.resources.footprint
    rw = [k.to_xdr() for k in fp.read_write]
    marked: set[str] = set()
    ext = data.ext
    if ext.v == 1 and ext.resource_ext is not None:
        marked = {
            rw[i.uint32] for i in ext.resource_ext.archived_soroban_entries if i.uint32 < len(rw)
        }
    unmarked: set[str] = set()
    for key in [k.to_xdr() for k in fp.read_only] + rw:
        entry = get(key)
        if entry is None or not is_archived(entry, ledger_seq) or is_temporary(key):
            continue
        if key not in marked:
            unmarked.add(key)
    return marked, unmarked


def _int_list(params: dict[str, Any], name: str) -> list[int]:
    value = params.get(name) or []
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**64 for v in value
    ):
        raise ExpireParamError(f"{name} must be a list of task ids")
    return value


def expire_entries(ledger: LedgerState, contract_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """``devnet_expireEntries``: end the TTL of ``contract_id``'s task entries (``task_ids``,
    or ``first_id``..``last_id``) and of any ledger entries (``keys``, base64 ``LedgerKey``s).
    Their ``liveUntilLedgerSeq`` becomes the latest ledger - 1: persistent ones are archived
    from now on, temporary ones gone. Entries without a TTL (accounts) and missing keys are
    counted in ``skipped``."""
    unknown = set(params) - {"task_ids", "first_id", "last_id", "keys"}
    if unknown:
        raise ExpireParamError(f"unknown fields: {', '.join(sorted(unknown))}")
    ids = _int_list(params, "task_ids")
    first, last = params.get("first_id"), params.get("last_id", params.get("first_id"))
    if first is not None:
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (first, last)):
            raise ExpireParamError("first_id and last_id must be integers")
        if not 1 <= first <= last or last - first >= MAX_EXPIRE:
            raise ExpireParamError(f"need 1 <= first_id <= last_id, at most {MAX_EXPIRE} ids")
        ids = ids + list(range(first, last + 1))
    keys = params.get("keys") or []
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ExpireParamError("keys must be a list of base64 LedgerKeys")
    try:
        canonical = [sx.LedgerKey.from_xdr(k).to_xdr() for k in keys]
    except Exception as exc:  # the generated decoders raise many exception types
        raise ExpireParamError(f"undecodable key: {exc}") from exc
    if len(ids) + len(canonical) > MAX_EXPIRE:
        raise ExpireParamError(f"at most {MAX_EXPIRE} entries at once")
    live_until = ledger.sequence - 1
    expired = skipped = 0
    for key in [task_key_b64(contract_id, i) for i in ids] + canonical:
        entry = ledger.get(key)
        if entry is None or entry.live_until is None:
            skipped += 1
            continue
        ledger.set_live_until(key, live_until)
        expired += 1
    return {"expired": expired, "skipped": skipped, "liveUntilLedgerSeq": live_until}
