"""The byte-level XDR the devnet writes in bulk, named the way the devnet uses it.

stellar-sdk's generated XDR classes cost about 0.3 ms to build one TaskConfig entry; seeding
100k tasks through them would take half a minute. The encoders are the bottom layer's
(:mod:`sorotask_core.xdr`, :mod:`sorotask_core.contract`, :mod:`sorotask_core.taskconfig`);
here they take strkeys, with each address converted once and memoised. Tests check every
encoder byte for byte against stellar-sdk.
"""

from __future__ import annotations

from functools import lru_cache

from sorotask_core import xdr
from sorotask_core.contract import COUNTER_KEY_SCVAL, sc_address_bytes
from sorotask_core.taskconfig import TaskEncoder
from sorotask_core.xdr import DURABILITY_PERSISTENT, account_entry, pack_u32

__all__ = [
    "TaskEncoder",
    "account_entry",
    "account_key",
    "b64",
    "contract_data_entry",
    "contract_data_key",
    "counter_key_val",
    "ledger_entry",
    "sc_address",
]

b64 = xdr.b64encode
#: ``LedgerKey::Account`` bytes for a raw ed25519 public key
account_key = xdr.account_ledger_key
#: ``ScAddress`` (no ScVal tag) of a G... account or C... contract strkey, memoised
sc_address = lru_cache(maxsize=65536)(sc_address_bytes)


def contract_data_key(
    contract_id: str, key_val: bytes, durability: int = DURABILITY_PERSISTENT
) -> bytes:
    """``LedgerKey::ContractData`` bytes."""
    return xdr.contract_data_ledger_key(sc_address(contract_id), key_val, durability)


def contract_data_entry(
    contract_id: str, key_val: bytes, val: bytes, durability: int = DURABILITY_PERSISTENT
) -> bytes:
    """``LedgerEntryData::ContractData`` bytes (ext v0)."""
    return xdr.contract_data_entry(sc_address(contract_id), key_val, val, durability)


def counter_key_val() -> bytes:
    """``DataKey::Counter``."""
    return COUNTER_KEY_SCVAL


def ledger_entry(last_modified: int, data: bytes) -> bytes:
    """Full ``LedgerEntry`` (ext v0) around ``LedgerEntryData`` bytes."""
    return pack_u32(last_modified) + data + pack_u32(0)
