"""Fixtures for the shard_worker tests: a real devnet process and funded keepers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sw_helpers import Keys

from devnet.process import DevnetProcess


@pytest.fixture(scope="module")
def devnet() -> Iterator[DevnetProcess]:
    with DevnetProcess(close_every=0.25, log_level="WARNING") as dn:
        yield dn


@pytest.fixture
def keys(devnet: DevnetProcess, monkeypatch: pytest.MonkeyPatch) -> Keys:
    return Keys(devnet, monkeypatch)
