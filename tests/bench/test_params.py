"""The bench's workload: where the due tasks and the changing load's no-gas pool sit."""

from __future__ import annotations

from sorotask.bench.params import NOT_DUE_INTERVAL, BenchParams, no_gas_ids, seed_calls


def _shard_of(task_id: int, p: BenchParams) -> int:
    return min(p.shards - 1, (task_id - 1) * p.shards // p.tasks)


def test_the_pool_is_spread_over_every_shard_and_taken_round_the_shards() -> None:
    # 1M tasks over 8 shards: the pool sat at the top ids, every deposit on the last shard
    p = BenchParams(tasks=1_000_000, shards=8, due_fraction=1e-5, change_fraction=1e-5, cycles=12)
    calls, due = seed_calls(p)
    assert sum(c["count"] for c in calls) == p.tasks
    assert sum(c["count"] for c in calls if c.get("gas_balance", 1) == 0) == p.no_gas_pool
    assert due == sum(
        c["count"] for c in calls if c["interval"] != NOT_DUE_INTERVAL and c.get("gas_balance", 1)
    )
    pool = no_gas_ids(calls, p.shards)
    assert len(pool) == len(set(pool)) == p.no_gas_pool
    per_shard = [0] * p.shards
    for task_id in pool:
        per_shard[_shard_of(task_id, p)] += 1
    assert max(per_shard) - min(per_shard) <= 1
    taken = [_shard_of(pool.pop(), p) for _ in range(2 * p.shards)]  # as the load takes them
    assert sorted(taken[: p.shards]) == list(range(p.shards))
    assert sorted(taken[p.shards :]) == list(range(p.shards))


def test_without_a_changing_load_there_is_no_pool() -> None:
    p = BenchParams(tasks=10_000, due_fraction=0.01)
    calls, due = seed_calls(p)
    assert due == 100 and no_gas_ids(calls, p.shards) == []
