"""The worker's spec: what identifies the shard's ids."""

from __future__ import annotations

from dataclasses import replace

from shard_worker.spec import SecretRef, WorkerSpec
from tests.support.keeper import offline_spec


def a_spec(**kw: object) -> WorkerSpec:
    return replace(offline_spec(), **kw)  # type: ignore[arg-type]


class TestIdSelection:
    def test_a_range_reads_as_its_bounds(self) -> None:
        assert a_spec(range_first=5, range_last=90).id_selection == "5-90"
        assert a_spec(range_first=5).id_selection == "5-"

    def test_every_change_of_the_range_or_the_list_changes_it(self) -> None:
        seen = {
            a_spec(range_first=1, range_last=100).id_selection,
            a_spec(range_first=1, range_last=200).id_selection,
            a_spec(range_first=2, range_last=100).id_selection,
            a_spec(range_first=1).id_selection,
            a_spec(range_first=1, task_ids=(3, 4)).id_selection,
            a_spec(range_first=1, task_ids=(3, 5)).id_selection,
        }
        assert len(seen) == 6

    def test_the_list_order_and_repeats_do_not_matter(self) -> None:
        one = a_spec(task_ids=(9, 3, 4)).id_selection
        assert a_spec(task_ids=(3, 4, 9, 9)).id_selection == one
        assert one.startswith("1-:") and len(one) == len("1-:") + 16

    def test_the_secret_is_not_part_of_it(self) -> None:
        one = a_spec(range_first=1, range_last=10).id_selection
        assert (
            a_spec(range_first=1, range_last=10, secret=SecretRef(env="OTHER")).id_selection == one
        )
