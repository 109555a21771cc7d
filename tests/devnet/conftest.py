from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from dn_helpers import CLOSE_EVERY
from stellar_sdk import SorobanServer

from devnet.process import DevnetProcess


@pytest.fixture(scope="session")
def devnet() -> Iterator[DevnetProcess]:
    """One shared devnet for the read-mostly tests (each test seeds its own tasks)."""
    log = os.environ.get("SOROTASK_DEVNET_TEST_LOG")  # keep the shared devnet's log
    with DevnetProcess(tasks=5, close_every=CLOSE_EVERY, log_path=log) as dn:
        yield dn


@pytest.fixture(scope="session")
def soroban(devnet: DevnetProcess) -> Iterator[SorobanServer]:
    with SorobanServer(devnet.info.rpc_url) as srv:
        yield srv
