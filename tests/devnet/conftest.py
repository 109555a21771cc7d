"""The devnet tests share one devnet (5 tasks) for the whole session: they are read-mostly and
each test seeds its own tasks. ``SOROTASK_DEVNET_TEST_LOG`` keeps that devnet's log."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from stellar_sdk import SorobanServer

from devnet.process import DevnetProcess
from tests.support.devnet import DevnetOptions


@pytest.fixture(scope="module")
def devnet_options() -> DevnetOptions:
    log = os.environ.get("SOROTASK_DEVNET_TEST_LOG")
    return DevnetOptions(tasks=5, log_level="INFO", log_path=log, shared=True)


@pytest.fixture(scope="module")
def soroban(devnet: DevnetProcess) -> Iterator[SorobanServer]:
    with SorobanServer(devnet.info.rpc_url) as srv:
        yield srv
