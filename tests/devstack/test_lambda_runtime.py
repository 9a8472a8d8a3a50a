"""The poller's functions as Lambda runs them (devstack.lambda_runtime): a container per function,
frozen between invocations, killed and discarded at its timeout, cold-started again after."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.lambda_runtime import Container, HandlerTimedOut, local_timeout_s

HANDLER = "tests.devstack.lambda_handlers:sleepy"


@pytest.fixture
def container() -> Iterator[Container]:
    c = Container(HANDLER, timeout_s=2.0)
    yield c
    c.discard()


def state_of(pid: int) -> str:
    """The process state letter from /proc: T = stopped (frozen), S/R = running."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def eventually_state(pid: int, wanted: str, timeout_s: float = 10.0) -> bool:
    """A signal's effect is asynchronous: poll for the state."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if state_of(pid) == wanted:
            return True
        time.sleep(0.02)
    return False


def test_a_container_is_frozen_between_invocations(container: Container) -> None:
    first = container({"sleep": 0})
    second = container({"sleep": 0})

    assert first["pid"] == second["pid"]  # warm: the same container
    assert container.cold_starts == 1
    assert eventually_state(first["pid"], "T")  # nothing runs in it until the next invocation


def test_an_invocation_past_its_timeout_is_killed_and_its_container_discarded(container: Container) -> None:
    before = container({"sleep": 0})["pid"]

    with pytest.raises(HandlerTimedOut):
        container({"sleep": 30})
    after = container({"sleep": 0})

    assert not Path(f"/proc/{before}").exists() or state_of(before) == "Z"
    assert after["pid"] != before and container.cold_starts == 2  # a new container, cold


def test_the_handler_sees_the_time_it_has_left(container: Container) -> None:
    answer = container({"sleep": 0})

    assert 0 < answer["remainingMs"] <= 2000


def test_a_send_timeout_not_below_the_lease_is_cut_below_it_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="devstack.poller"):
        cut = local_timeout_s("send", 60, send_lease_s=15)

    assert cut < 15
    assert "SEND_LEASE_S=15" in caplog.text
    assert local_timeout_s("send", 60, send_lease_s=120) == 60
    assert local_timeout_s("fan_out", 90, send_lease_s=15) == 90
