"""The keeper's read batches: 200 keys a call, each key encoded once, the right key per id."""

from __future__ import annotations

import asyncio

from stellar_sdk import StrKey

from shard_worker.keeper import MAX_KEYS_PER_CALL, Keeper
from shard_worker.spec import SecretRef, WorkerSpec
from sorotask_core import contract
from tests.support.reference_contract import task_ledger_key_b64

CONTRACT_ID = StrKey.encode_contract(b"\x07" * 32)


class CountingKeys(contract.TaskKeys):
    def __init__(self, contract_id: str) -> None:
        super().__init__(contract_id)
        self.encoded: list[int] = []

    def key_b64(self, task_id: int) -> str:
        self.encoded.append(task_id)
        return super().key_b64(task_id)


def make_keeper() -> tuple[Keeper, CountingKeys]:
    spec = WorkerSpec(
        name="t",
        rpc_url="http://127.0.0.1:1/",
        network_passphrase="p",
        contract_id=CONTRACT_ID,
        secret=SecretRef(env="UNUSED"),
    )
    keeper = Keeper(spec, None, asyncio.Event())  # type: ignore[arg-type]
    keys = CountingKeys(CONTRACT_ID)
    keeper.task_keys = keys
    return keeper, keys


class TestReadBatches:
    def test_batches_hold_at_most_200_ids_with_their_own_keys(self) -> None:
        keeper, _ = make_keeper()
        ids = list(range(1, 451))
        chunks = keeper._chunks(ids)
        assert [len(c) for c, _ in chunks] == [MAX_KEYS_PER_CALL, MAX_KEYS_PER_CALL, 50]
        assert [i for c, _ in chunks for i in c] == ids
        for c, k in chunks:
            assert k == [task_ledger_key_b64(CONTRACT_ID, i) for i in c]
        assert all(
            keeper._key_to_id[k] == i for c, ks in chunks for i, k in zip(c, ks, strict=True)
        )

    def test_each_key_is_encoded_once_while_the_counter_grows(self) -> None:
        keeper, keys = make_keeper()
        keeper._chunks(list(range(1, 301)))
        keeper._chunks(list(range(1, 301)))  # unchanged: nothing encoded
        chunks = keeper._chunks(list(range(1, 306)))  # five tasks registered
        assert keys.encoded == list(range(1, 306))
        assert chunks[-1][0] == list(range(201, 306))
        assert chunks[-1][1][-1] == task_ledger_key_b64(CONTRACT_ID, 305)

    def test_a_different_id_list_is_rebuilt_whole(self) -> None:
        keeper, keys = make_keeper()
        keeper._chunks([1, 2, 3])
        chunks = keeper._chunks([2, 3, 9])
        assert keys.encoded == [1, 2, 3, 2, 3, 9]
        assert chunks == [([2, 3, 9], [task_ledger_key_b64(CONTRACT_ID, i) for i in (2, 3, 9)])]
