"""`make run` as a supervisor, with real processes: a killed poller is started again and the queued
work gets done; SIGTERM twice, SIGHUP, or a SIGKILL of the supervisor alone leaves no process and
no port behind; misconfiguration is one line
on the terminal, before anything starts."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.localstack import PORT_NAMES, app_with_credential, call, device_of, make_run_env, start_make_run

OPERATOR_KEY = "supervisor-test-key-0123456789"


def stack_env(state_dir: Path, **extra: str) -> dict[str, str]:
    return make_run_env(state_dir, OPERATOR_KEY, **extra)


@dataclass
class RunningStack:
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    lines: list[str] = field(default_factory=list)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.env['API_PORT']}"

    @property
    def sandbox(self) -> str:
        return f"http://127.0.0.1:{self.env['APNS_SANDBOX_UI_PORT']}"

    @property
    def ports(self) -> list[int]:
        return [int(self.env[name]) for name in PORT_NAMES]

    def wait_for_line(self, text: str, timeout_s: float = 60) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            assert self.proc.poll() is None, "".join(self.lines[-20:])
            time.sleep(0.1)
        raise AssertionError(f"no line with {text!r} in:\n" + "".join(self.lines[-20:]))


def descendants(pid: int) -> dict[int, str]:
    """Every process below ``pid`` (by parent), with its start time (to tell a reused PID apart)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
            starts[int(entry)] = fields[19]
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = starts[child]
            todo.append(child)
    return found


def alive(pid: int, start: str) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[19] == start and fields[0] != "Z"


def child_pid(stack: RunningStack, module: str) -> int:
    for pid in descendants(stack.proc.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if module.encode() in cmdline:
            return pid
    raise AssertionError(f"no {module} process under make run")


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def running_stack(tmp_path: Path) -> Iterator[RunningStack]:
    env = stack_env(tmp_path)
    proc = start_make_run(env)
    stack = RunningStack(proc=proc, env=env)

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            stack.lines.append(raw.decode(errors="replace"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        stack.wait_for_line("local stack is up", timeout_s=90)
        yield stack
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(60)
        reader.join(10)


def test_a_killed_poller_is_started_again_and_the_queued_work_gets_done(running_stack: RunningStack) -> None:
    stack = running_stack
    # Given an app with a credential and bob's device (state in the emulator)
    app_id, admin, cert = app_with_credential(stack.api, stack.sandbox, OPERATOR_KEY)
    token = device_of(stack.api, stack.sandbox, app_id, admin, cert, "bob")

    # When the poller dies (as a Lambda container would) and a message is queued meanwhile
    poller = child_pid(stack, "devstack.poller")
    os.kill(poller, signal.SIGKILL)
    stack.wait_for_line("the poller exited (signal SIGKILL)")
    call(
        "POST",
        f"{stack.api}/v1/apps/{app_id}/messages",
        {
            "messageId": "m-after-crash",
            "sendTime": int(time.time()),
            "sender": {"userId": "alice", "nickname": "Alice"},
            "to": {"userId": "bob"},
            "elems": [{"type": "text", "text": "still there?"}],
        },
        token=admin,
    )

    # Then make run starts a new poller, which delivers the message
    assert "restarting it; the stack keeps its state" in stack.wait_for_line("the poller exited")
    stack.wait_for_line("the poller is back")
    assert child_pid(stack, "devstack.poller") != poller
    deadline = time.monotonic() + 60
    items: list[Any] = []
    while time.monotonic() < deadline and not items:
        items = call("GET", f"{stack.sandbox}/sandbox/notifications?deviceToken={token}")["items"]
        time.sleep(0.2)
    assert items, "the message queued while the poller was dead never reached the sandbox"
    assert items[0]["payload"]["aps"]["alert"]["body"] == "Alice:still there?"
    assert stack.proc.poll() is None


def test_a_killed_emulator_comes_back_empty_with_the_api_and_poller_and_says_so(
    running_stack: RunningStack,
) -> None:
    stack = running_stack
    call("POST", f"{stack.api}/v1/apps", {"name": "Before"}, token=OPERATOR_KEY)
    api = child_pid(stack, "devstack.api")

    os.kill(child_pid(stack, "devstack.fast_emulator"), signal.SIGKILL)

    line = stack.wait_for_line("the emulator exited (signal SIGKILL)")
    assert "it held ALL the service's state in memory" in line
    stack.wait_for_line("the emulator is back, with api, poller")
    assert child_pid(stack, "devstack.api") != api
    # the table and queues are there again: the API works, on an empty store
    assert call("POST", f"{stack.api}/v1/apps", {"name": "After"}, token=OPERATOR_KEY)["appId"]


def test_sigterm_twice_stops_every_child_and_frees_every_port(running_stack: RunningStack) -> None:
    stack = running_stack
    children = descendants(stack.proc.pid)
    assert len(children) >= 4  # emulator (+ its worker), sandbox, API, poller

    os.killpg(stack.proc.pid, signal.SIGTERM)
    os.killpg(stack.proc.pid, signal.SIGTERM)
    # more signals while it cleans up must not cut the clean-up short
    stack.wait_for_line("stopping...")
    while stack.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(stack.proc.pid, signal.SIGTERM)
        time.sleep(0.02)
    assert stack.proc.wait() == 0, "".join(stack.lines[-20:])

    left = [pid for pid, start in children.items() if alive(pid, start)]
    assert not left, f"still running after make run ended: {left}"
    busy = [port for port in stack.ports if not port_is_free(port)]
    assert not busy, f"ports still held: {busy}"
    assert any("still stopping (SIGTERM ignored)" in line for line in stack.lines)


def wait_until_gone(children: dict[int, str], ports: list[int], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        left = [pid for pid, start in children.items() if alive(pid, start)]
        busy = [port for port in ports if not port_is_free(port)]
        if not left and not busy:
            return
        time.sleep(0.1)
    raise AssertionError(f"{timeout_s:.0f} s later, still running: {left}; ports still held: {busy}")


def test_sighup_stops_every_child_and_frees_every_port(running_stack: RunningStack) -> None:
    stack = running_stack
    # Given the stack up, with its parts (and the watchdog) below make run
    children = descendants(stack.proc.pid)
    assert len(children) >= 5  # emulator (+ its worker), sandbox, API, poller, watchdog

    # When the terminal closes: SIGHUP to make run's process group
    os.killpg(stack.proc.pid, signal.SIGHUP)

    # Then it stops as on Ctrl-C: a clean exit, nothing left running, every port free
    assert stack.proc.wait(60) == 0, "".join(stack.lines[-20:])
    assert any("stopping..." in line for line in stack.lines)
    wait_until_gone(children, stack.ports)


def test_a_sigkilled_supervisor_takes_every_part_with_it(running_stack: RunningStack) -> None:
    stack = running_stack
    children = descendants(stack.proc.pid)
    assert len(children) >= 5

    # When the supervisor alone is SIGKILLed (no clean-up of its own can run)
    os.kill(stack.proc.pid, signal.SIGKILL)
    stack.proc.wait(10)

    # Then its parts die all the same (the watchdog's pipe ends) and their ports are free
    wait_until_gone(children, stack.ports)


def test_a_killed_watchdog_is_started_again(running_stack: RunningStack) -> None:
    stack = running_stack
    watchdog = child_pid(stack, "devstack.watchdog")

    os.kill(watchdog, signal.SIGKILL)

    stack.wait_for_line("the watchdog exited (signal SIGKILL); restarting it")
    deadline = time.monotonic() + 30
    while child_pid(stack, "devstack.watchdog") == watchdog and time.monotonic() < deadline:
        time.sleep(0.1)
    assert child_pid(stack, "devstack.watchdog") != watchdog
    # and the new one knows every part: SIGKILL the supervisor, all of them go
    children = descendants(stack.proc.pid)
    os.kill(stack.proc.pid, signal.SIGKILL)
    stack.proc.wait(10)
    wait_until_gone(children, stack.ports)


def run_misconfigured(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack"],
        cwd=Path(__file__).resolve().parents[2],
        env=stack_env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_short_operator_key_is_one_line_saying_how_to_fix_it(tmp_path: Path) -> None:
    result = run_misconfigured(tmp_path, OPERATOR_KEY="too-short")

    assert result.returncode == 2
    assert result.stdout == ""
    message = result.stderr.strip()
    assert "\n" not in message
    assert "OPERATOR_KEY is 9 characters, it needs at least 16" in message
    assert "set a longer one" in message
    assert "too-short" not in message  # never the key itself
    assert not (tmp_path / "logs").exists()  # nothing was started


def test_a_port_in_use_is_one_line_saying_how_to_fix_it(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        result = run_misconfigured(tmp_path, API_PORT=str(taken))

    assert result.returncode == 2
    message = result.stderr.strip()
    assert "\n" not in message
    assert f"port {taken} (the API, API_PORT) is already in use" in message
    assert "API_PORT=" in message.split("choose another, e.g. ")[1]
    assert not (tmp_path / "logs").exists()


def test_the_send_tuning_environment_wins_over_the_stage_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a stage that sets SEND_LEASE_S and MAX_SEND_ATTEMPTS, when `chalice local` (through
    devstack.api) loads the app with SEND_LEASE_S=7 in its environment, the app sees 7."""
    from chalice import Chalice
    from chalice.cli.factory import CLIFactory

    from devstack.api import PASSTHROUGH, overriding, pinned

    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(
        json.dumps(
            {
                "version": "2.0",
                "app_name": "t",
                "stages": {
                    "local": {"environment_variables": {"SEND_LEASE_S": "120", "MAX_SEND_ATTEMPTS": "9"}}
                },
            }
        )
    )
    monkeypatch.setitem(sys.modules, "app", type("AppModule", (), {"app": Chalice("t")}))

    def loaded_environment(load_chalice_app: Any) -> dict[str, str]:
        environ = {"SEND_LEASE_S": "7", "RETRY_BASE_DELAY_S": ""}
        monkeypatch.setattr(CLIFactory, "load_chalice_app", load_chalice_app)
        config = CLIFactory(str(tmp_path), environ=environ).create_config_obj(chalice_stage_name="local")
        assert config.chalice_app is not None
        return environ

    load_chalice_app = CLIFactory.load_chalice_app
    assert loaded_environment(load_chalice_app)["SEND_LEASE_S"] == "120"  # chalice local as is
    seen = loaded_environment(
        overriding(load_chalice_app, pinned({"SEND_LEASE_S": "7", "RETRY_BASE_DELAY_S": ""}))
    )
    assert seen["SEND_LEASE_S"] == "7"
    assert seen["MAX_SEND_ATTEMPTS"] == "9"  # not given: the stage's value
    assert set(PASSTHROUGH) == {
        "SEND_LEASE_S",
        "MAX_SEND_ATTEMPTS",
        "RETRY_BASE_DELAY_S",
        "FOREGROUND_LEASE_DEFAULT_S",
    }
