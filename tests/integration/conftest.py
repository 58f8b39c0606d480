"""Fixtures several integration modules share: an event loop for synchronous (hypothesis) tests, the SNS stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from sandbox.sns import SnsStandIn


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A loop of the module's own, which a synchronous (hypothesis) test drives with run_until_complete."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def sns() -> Iterator[SnsStandIn]:
    """SNS at the HTTP boundary: signed messages, its certificate, subscription confirmations."""
    with SnsStandIn() as stand_in:
        yield stand_in
