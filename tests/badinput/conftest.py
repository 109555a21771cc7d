"""The bad-input tests reuse the shard_worker tests' helpers (recording reporter, funded keys,
worker specs) and run against a real devnet process."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_SW = str(Path(__file__).resolve().parents[1] / "shard_worker")
if _SW not in sys.path:
    sys.path.insert(0, _SW)

from sw_helpers import Keys  # noqa: E402

from devnet.process import DevnetProcess  # noqa: E402


@pytest.fixture(scope="module")
def devnet() -> Iterator[DevnetProcess]:
    with DevnetProcess(close_every=0.25, log_level="WARNING") as dn:
        yield dn


@pytest.fixture
def keys(devnet: DevnetProcess, monkeypatch: pytest.MonkeyPatch) -> Keys:
    return Keys(devnet, monkeypatch)
