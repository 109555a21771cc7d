"""Fixtures shared by every test folder; the one place a test devnet is started for a fixture.

``devnet`` is a real devnet process on 127.0.0.1. A test module gets one of its own (a fresh
ledger with no tasks) unless ``devnet_options`` says otherwise: a folder's conftest or a module
overrides that fixture (tests/devnet shares one devnet with 5 tasks across the whole session;
a module that closes ledgers by hand asks for ``close_every=3600``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from devnet.process import DevnetProcess
from tests.support.devnet import DevnetOptions
from tests.support.keeper import Keys


@pytest.fixture(scope="module")
def devnet_options() -> DevnetOptions:
    return DevnetOptions()


@pytest.fixture(scope="session")
def _shared_devnets() -> Iterator[tuple[contextlib.ExitStack, dict[DevnetOptions, DevnetProcess]]]:
    with contextlib.ExitStack() as stack:
        yield stack, {}


@pytest.fixture(scope="module")
def devnet(
    devnet_options: DevnetOptions,
    _shared_devnets: tuple[contextlib.ExitStack, dict[DevnetOptions, DevnetProcess]],
) -> Iterator[DevnetProcess]:
    if devnet_options.shared:
        stack, started = _shared_devnets
        if devnet_options not in started:
            started[devnet_options] = stack.enter_context(devnet_options.start())
        yield started[devnet_options]
        return
    with devnet_options.start() as dn:
        yield dn


@pytest.fixture
def keys(devnet: DevnetProcess, monkeypatch: pytest.MonkeyPatch) -> Keys:
    """Keypairs funded on this module's devnet, their seeds in env vars for the test."""
    return Keys(devnet, monkeypatch)
