"""`make run`: the whole service on this machine, no AWS account, kept up by a small supervisor.

Checks the configuration first (operator key, free ports) and says in one line how to fix what
is wrong. Then starts, in order: the AWS emulator (moto server) and the table/queues, the APNs
sandbox, the API (`chalice local --stage local`) and the queue poller that drives the
SQS-triggered handlers; prints where everything listens and stays in the foreground.

While it runs, a child that exits is started again, with a line saying so:
- the poller or the API: they hold no state (as Lambda starts a new container);
- the sandbox: its keys and devices are on disk (.local/apns-sandbox), its inbox is lost;
- the emulator: it holds *all* the service's state in memory (apps, credentials, devices,
  queued messages), which is gone; it is started again empty, with the table and queues, and the
  API and poller are restarted with it.
A child that keeps exiting (5 times within a minute) stops the stack.

Ctrl-C, SIGTERM or SIGHUP (the terminal closed) stops every child (and their children); further
signals while stopping are ignored, so the clean-up always completes. A supervisor that cannot clean
up (SIGKILL, a crash) takes its parts with it all the same: a watchdog process
(``devstack/watchdog.py``) learns of its end through a pipe and stops every part's process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("DEVSTACK_STATE_DIR") or ROOT / ".local")

PORTS = (
    ("API_PORT", 8000, "the API"),
    ("AWS_EMULATOR_PORT", 5000, "the AWS emulator"),
    ("APNS_SANDBOX_PRODUCTION_PORT", 2197, "the APNs sandbox (production)"),
    ("APNS_SANDBOX_DEVELOPMENT_PORT", 2196, "the APNs sandbox (development)"),
    ("APNS_SANDBOX_UI_PORT", 8025, "the APNs sandbox inbox"),
)
# `AWS_FAULTS=throttle:0.1,... make run`: the AWS fault layer (devstack.aws_faults) between the
# functions and the emulator, on this port.
FAULTS_PORT = ("AWS_FAULTS_PORT", 5010, "the AWS fault layer")
RESTART_LIMIT = 5  # restarts of one child within RESTART_WINDOW_S before the stack gives up
RESTART_WINDOW_S = 60.0
STOP_GRACE_S = 10.0


def stage_env(stage: str = "local") -> dict[str, str]:
    """The environment Chalice gives the functions of a stage (top level, then the stage's own)."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    env = dict(config.get("environment_variables", {}))
    env.update(config["stages"][stage].get("environment_variables", {}))
    return env


def operator_key() -> str:
    if os.environ.get("OPERATOR_KEY"):
        return os.environ["OPERATOR_KEY"]
    path = STATE / "operator-key"
    if not path.exists():
        STATE.mkdir(parents=True, exist_ok=True)
        path.write_text("local-" + secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def port(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


_DEVICE_TOKEN = re.compile(rb"\b([0-9a-fA-F]{8})[0-9a-fA-F]{56,}\b")


def redact(line: bytes) -> bytes:
    """Device tokens travel in URL paths, so access logs would hold them whole: keep 8 characters."""
    return _DEVICE_TOKEN.sub(rb"\1...", line)


# ---- configuration, checked before anything starts ------------------------------------------------


class Misconfigured(Exception):
    """One line for the terminal: what is wrong and how to fix it."""


def check_ports(environ: dict[str, str]) -> dict[str, int]:
    ports: dict[str, int] = {}
    wanted = (*PORTS, FAULTS_PORT) if "AWS_FAULTS" in environ else PORTS
    for name, default, _what in wanted:
        raw = environ.get(name) or str(default)
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            raise Misconfigured(
                f"{name}={raw!r} is not a port number: set it to a free port (1-65535) or unset it"
            )
        ports[name] = int(raw)
    seen: dict[int, str] = {}
    for name, number in ports.items():
        if number in seen:
            raise Misconfigured(f"{seen[number]} and {name} are both {number}: give each part its own port")
        seen[number] = name
    for name, _default, what in wanted:
        number = ports[name]
        if not port_is_free(number):
            raise Misconfigured(
                f"port {number} ({what}, {name}) is already in use on 127.0.0.1 (an earlier `make run`?): "
                f"stop what holds it (`ss -ltnp 'sport = :{number}'`) or choose another, e.g. "
                f"{name}={free_port_near(number)} make run"
            )
    return ports


def port_is_free(number: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no conflict
        try:
            s.bind(("127.0.0.1", number))
        except OSError:
            return False
    return True


def free_port_near(number: int) -> int:
    for candidate in range(number + 1, min(number + 100, 65535)):
        if port_is_free(candidate):
            return candidate
    return 0


def check_faults(text: str) -> None:
    from devstack.aws_faults import BadFaults, Faults

    try:
        Faults.parse(text)
    except BadFaults as exc:
        raise Misconfigured(f"{exc}, or unset it") from None


def check_settings(env: dict[str, str]) -> None:
    """The functions' settings (chalicelib/settings.py) must load, or every request would fail."""
    from pydantic import ValidationError

    from chalicelib.settings import Settings, load_settings

    key = env.get("OPERATOR_KEY", "")
    min_length = next(
        (m.min_length for m in Settings.model_fields["operator_key"].metadata if hasattr(m, "min_length")), 0
    )
    if len(key) < min_length:
        raise Misconfigured(
            f"OPERATOR_KEY is {len(key)} characters, it needs at least {min_length}: set a longer one "
            f"(e.g. OPERATOR_KEY=$(openssl rand -hex 16) make run), or unset it to use the key generated "
            f"in {STATE / 'operator-key'}"
        )
    try:
        load_settings(env)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "a setting"
        shown = "" if re.search("KEY|SECRET|PASSWORD", name) else f"={env.get(name, '')!r}"
        raise Misconfigured(f"{name}{shown} is not valid ({error['msg']}): fix or unset it") from None


# ---- children --------------------------------------------------------------------------------------


def spawn(
    args: list[str], env: dict[str, str], log_name: str, *, redact_tokens: bool = False
) -> subprocess.Popen[bytes]:
    """A child in its own session and process group (so stopping the group stops its children too,
    and a Ctrl-C on the terminal reaches only the supervisor), logging to .local/logs."""
    logs = STATE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out = (logs / f"{log_name}.log").open("ab")
    if not redact_tokens:
        with out:
            return subprocess.Popen(
                args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
    proc = subprocess.Popen(
        args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )

    def pump() -> None:
        assert proc.stdout is not None
        with out:
            for line in proc.stdout:
                out.write(redact(line))
                out.flush()

    threading.Thread(target=pump, name=f"log-{log_name}", daemon=True).start()
    return proc


def stop_all(procs: list[subprocess.Popen[bytes]], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM every child's process group, wait, then SIGKILL whatever is left of each group.

    Children are watched without being reaped (``exit_status``), so a group is killed while its
    leader is at worst a zombie and its ID cannot have been reused: leftovers such as the
    emulator's worker process die with it.  Only then is the leader reaped."""
    for proc in procs:
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        while exit_status(proc) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        _signal_group(proc, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


def exit_status(proc: subprocess.Popen[bytes]) -> str | None:
    """None while the process runs; else how it ended ("code 1", "signal SIGKILL"), without reaping it."""
    if proc.returncode is not None:
        return _describe(proc.returncode)
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return "code ?"
    if info is None:
        return None
    if info.si_code == os.CLD_EXITED:
        return _describe(info.si_status)
    return _describe(-info.si_status)


def _describe(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-returncode).name}"
    return f"code {returncode}"


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.returncode is not None:  # reaped: its group ID may belong to someone else by now
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


@dataclass
class Child:
    name: str
    log: str
    start: Callable[[], subprocess.Popen[bytes]]
    ready_url: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    restarts: deque[float] = field(default_factory=deque)


class Stopping(Exception):
    """A signal asked the stack to stop."""


class Supervisor:
    def __init__(self) -> None:
        self.children: dict[str, Child] = {}
        self.stopping = False
        self.started: list[subprocess.Popen[bytes]] = []  # every process ever started, to stop them all
        self.watchdog: subprocess.Popen[bytes] | None = None

    def start_watchdog(self) -> None:
        """The process that stops every part if this one dies without stopping them (SIGKILL).
        Started again, told every running part, if it was killed itself."""
        self.watchdog = subprocess.Popen(
            [sys.executable, "-m", "devstack.watchdog"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            start_new_session=True,  # the terminal's signals must not end it before this process
        )
        for proc in self.started:
            if proc.returncode is None:
                self.tell_watchdog(f"+{proc.pid}")

    def tell_watchdog(self, line: str) -> None:
        if self.watchdog is None or self.watchdog.stdin is None:
            return
        with contextlib.suppress(BrokenPipeError, ValueError):  # it died: the loop restarts it
            self.watchdog.stdin.write(f"{line}\n".encode())
            self.watchdog.stdin.flush()

    def stop_watchdog(self) -> None:
        if self.watchdog is None:
            return
        with contextlib.suppress(OSError, ValueError):
            assert self.watchdog.stdin is not None
            self.watchdog.stdin.close()  # end of file with no part listed: it exits at once
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.watchdog.wait(5)

    def stop_procs(self, procs: list[subprocess.Popen[bytes]], grace_s: float = STOP_GRACE_S) -> None:
        stop_all(procs, grace_s)
        for proc in procs:
            if proc.returncode is not None:  # reaped: its group ID may be reused from now on
                self.tell_watchdog(f"-{proc.pid}")

    def on_signal(self, signum: int, _frame: Any) -> None:
        """The first signal asks the main loop to stop; later ones are noted, nothing more.

        Only a flag is set and os.write used: a handler that raised, took a lock or printed
        could interrupt (or deadlock) the clean-up it runs in the middle of."""
        if self.stopping:
            os.write(2, f"make run: still stopping ({signal.Signals(signum).name} ignored)\n".encode())
        self.stopping = True

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(0.1)

    def add(self, child: Child) -> None:
        self.children[child.name] = child

    def launch(self, name: str) -> None:
        child = self.children[name]
        if self.stopping:
            raise Stopping
        child.proc = child.start()
        self.started.append(child.proc)
        self.tell_watchdog(f"+{child.proc.pid}")
        if child.ready_url:
            self.wait_ready(child)

    def wait_ready(self, child: Child, timeout_s: float = 60.0) -> None:
        assert child.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.stopping:
                raise Stopping
            status = exit_status(child.proc)
            if status is not None:
                raise ChildFailed(child, f"exited ({status}) while starting")
            try:
                with urllib.request.urlopen(child.ready_url, timeout=2):  # noqa: S310 (loopback only)
                    return
            except OSError:
                time.sleep(0.1)
        raise ChildFailed(child, f"did not answer on {child.ready_url} within {timeout_s:.0f} s")

    def stop(self) -> None:
        self.stopping = True
        self.stop_procs(list(reversed(self.started)))
        self.stop_watchdog()

    def restart(self, names: list[str], reason: str) -> None:
        """Stop and start these children again (in the given order), counting each restart."""
        now = time.monotonic()
        for name in names:
            child = self.children[name]
            while child.restarts and now - child.restarts[0] > RESTART_WINDOW_S:
                child.restarts.popleft()
            if len(child.restarts) >= RESTART_LIMIT:
                raise ChildFailed(
                    child, f"exited {RESTART_LIMIT + 1} times within {RESTART_WINDOW_S:.0f} s ({reason})"
                )
        for name in reversed(names):
            proc = self.children[name].proc
            if proc is not None:
                self.stop_procs([proc], grace_s=5)
        for name in names:
            self.children[name].restarts.append(now)
            self.launch(name)


class ChildFailed(Exception):
    def __init__(self, child: Child, what: str) -> None:
        super().__init__(f"{child.name} {what}")
        self.child = child
        self.what = what


def say(line: str) -> None:
    print(f"make run: {line}", flush=True)


def log_tail(log: str, lines: int = 5) -> str:
    path = STATE / "logs" / f"{log}.log"
    try:
        tail = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "".join(f"\n    {line}" for line in tail)


def main() -> int:
    from devstack.api import pinned

    supervisor = Supervisor()
    signal.signal(signal.SIGINT, supervisor.on_signal)
    signal.signal(signal.SIGTERM, supervisor.on_signal)
    signal.signal(signal.SIGHUP, supervisor.on_signal)  # the terminal closed: stop as on Ctrl-C

    # Fake credentials: the emulator accepts any, and nothing here may reach a real AWS account.
    for name, default in (
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_REGION", "us-east-1"),
    ):
        os.environ.setdefault(name, default)
    try:
        ports = check_ports(dict(os.environ))
        key = operator_key()
        sandbox_state = STATE / "apns-sandbox"
        emulator_url = f"http://127.0.0.1:{ports['AWS_EMULATOR_PORT']}"
        env = {
            **os.environ,
            **stage_env("local"),
            "AWS_ENDPOINT_OVERRIDE": emulator_url,
            "OPERATOR_KEY": key,
            "APNS_PRODUCTION_HOST": "127.0.0.1",
            "APNS_PRODUCTION_PORT": str(ports["APNS_SANDBOX_PRODUCTION_PORT"]),
            "APNS_DEVELOPMENT_HOST": "127.0.0.1",
            "APNS_DEVELOPMENT_PORT": str(ports["APNS_SANDBOX_DEVELOPMENT_PORT"]),
            "APNS_EXTRA_CA_FILE": str(sandbox_state / "ca.pem"),
            "TRUSTED_PUSH_ISSUERS_FILE": str(sandbox_state / "ca.pem"),
            "APNS_SANDBOX_STATE_DIR": str(sandbox_state),
            "APNS_SANDBOX_PRODUCTION_PORT": str(ports["APNS_SANDBOX_PRODUCTION_PORT"]),
            "APNS_SANDBOX_DEVELOPMENT_PORT": str(ports["APNS_SANDBOX_DEVELOPMENT_PORT"]),
            "APNS_SANDBOX_UI_PORT": str(ports["APNS_SANDBOX_UI_PORT"]),
            "PYTHONUNBUFFERED": "1",
            # the send-tuning settings of this environment beat the stage's (also in devstack.api)
            **pinned(os.environ),
        }
        env.pop("AWS_EMULATOR_URL", None)
        if "AWS_FAULTS" in os.environ:
            check_faults(os.environ["AWS_FAULTS"])
            env["AWS_EMULATOR_URL"] = emulator_url  # the event source mapping is AWS's own: no faults
            env["AWS_ENDPOINT_OVERRIDE"] = f"http://127.0.0.1:{ports['AWS_FAULTS_PORT']}"
        check_settings(env)
    except Misconfigured as exc:
        print(f"make run: {exc}", file=sys.stderr, flush=True)
        return 2

    api_port, ui_port = ports["API_PORT"], ports["APNS_SANDBOX_UI_PORT"]
    faults = faults_line(env)
    add_children(supervisor, env, ports)
    supervisor.start_watchdog()
    try:
        for name in supervisor.children:
            supervisor.launch(name)
        print(
            f"""
APNs offline push: local stack is up (logs in {STATE / "logs"}/)

  API (chalice local)            http://127.0.0.1:{api_port}      OpenAPI: /openapi.json
  Operator console               http://127.0.0.1:{api_port}/console  (sign in with OPERATOR_KEY)
  AWS emulator (moto server)     {emulator_url}
      table {env["TABLE_NAME"]}; queues {env["INTAKE_QUEUE_NAME"]}, {env["SEND_QUEUE_NAME"]},
      {env["WEBHOOK_QUEUE_NAME"]} (+ -dlq){faults}
  APNs sandbox production        https://127.0.0.1:{ports["APNS_SANDBOX_PRODUCTION_PORT"]}   (HTTP/2 + TLS)
  APNs sandbox development       https://127.0.0.1:{ports["APNS_SANDBOX_DEVELOPMENT_PORT"]}
  APNs sandbox inbox + control   http://127.0.0.1:{ui_port}/
  SQS handlers                   driven by the poller (devstack.poller)

  OPERATOR_KEY={key}

The emulator keeps all state in memory: stopping it (or this) forgets apps, devices and queues.
Ctrl-C stops everything.""",
            flush=True,
        )
        supervise(supervisor)
        say("stopping...")
        return 0
    except Stopping:
        say("stopping...")
        return 0
    except ChildFailed as exc:
        log = STATE / "logs" / f"{exc.child.log}.log"
        say(f"{exc}; stopping the stack. Last lines of {log}:{log_tail(exc.child.log)}")
        return 1
    finally:
        supervisor.stop()
        # Done: signals still on their way must not kill the interpreter as it exits (Python puts the
        # default handlers back at exit, which would turn a clean stop into "killed by SIGTERM").
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)


def faults_line(env: dict[str, str]) -> str:
    if "AWS_EMULATOR_URL" not in env:
        return ""
    return (
        f"\n  AWS fault layer                {env['AWS_ENDPOINT_OVERRIDE']}   "
        f"AWS_FAULTS={env.get('AWS_FAULTS') or 'off'}"
        f"\n      the functions' AWS calls go through it; change it: curl -X PUT --data 'throttle:0.5' "
        f"{env['AWS_ENDPOINT_OVERRIDE']}/_faults"
    )


def add_children(supervisor: Supervisor, env: dict[str, str], ports: dict[str, int]) -> None:
    from devstack.fast_emulator import emulator_command, emulator_env

    emulator_url = env.get("AWS_EMULATOR_URL") or env["AWS_ENDPOINT_OVERRIDE"]

    def start_emulator() -> subprocess.Popen[bytes]:
        return spawn(emulator_command(ports["AWS_EMULATOR_PORT"]), emulator_env(env), "emulator")

    supervisor.add(Child("emulator", "emulator", start_emulator, ready_url=f"{emulator_url}/moto-api/"))
    if "AWS_EMULATOR_URL" in env:
        faults_url = env["AWS_ENDPOINT_OVERRIDE"]
        args = [
            "--port",
            str(ports["AWS_FAULTS_PORT"]),
            "--upstream",
            emulator_url,
            "--faults",
            env["AWS_FAULTS"],
        ]
        supervisor.add(
            Child(
                "aws-faults",
                "aws-faults",
                lambda: spawn([sys.executable, "-m", "devstack.aws_faults", *args], env, "aws-faults"),
                ready_url=f"{faults_url}/_faults",
            )
        )
    supervisor.add(
        Child(
            "apns-sandbox",
            "apns-sandbox",
            lambda: spawn([sys.executable, "-m", "apns_sandbox"], env, "apns-sandbox"),
            ready_url=f"http://127.0.0.1:{ports['APNS_SANDBOX_UI_PORT']}/sandbox/ca.pem",
        )
    )
    api_args = [
        "--no-autoreload",
        "--stage",
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        str(ports["API_PORT"]),
    ]

    def start_api() -> subprocess.Popen[bytes]:
        create_resources(env)  # the API answers only once its table and queues exist
        return spawn([sys.executable, "-m", "devstack.api", *api_args], env, "api", redact_tokens=True)

    supervisor.add(
        Child("api", "api", start_api, ready_url=f"http://127.0.0.1:{ports['API_PORT']}/openapi.json")
    )
    supervisor.add(
        Child("poller", "poller", lambda: spawn([sys.executable, "-m", "devstack.poller"], env, "poller"))
    )


def create_resources(env: dict[str, str]) -> None:
    """The table and queues (again, after the emulator restarted empty; a no-op otherwise)."""
    import boto3

    from devstack import resources

    url, region = env.get("AWS_EMULATOR_URL") or env["AWS_ENDPOINT_OVERRIDE"], env["AWS_REGION"]
    ddb = boto3.client("dynamodb", endpoint_url=url, region_name=region)
    sqs = boto3.client("sqs", endpoint_url=url, region_name=region)
    resources.create_all(
        ddb,
        sqs,
        env["TABLE_NAME"],
        env["INTAKE_QUEUE_NAME"],
        env["SEND_QUEUE_NAME"],
        webhook_queue=env["WEBHOOK_QUEUE_NAME"],
    )


# What else starts again when a child exits, and what the line on the terminal says.
RESTARTS: dict[str, tuple[list[str], str]] = {
    "poller": (["poller"], "restarting it; the stack keeps its state"),
    "api": (["api"], "restarting it; the stack keeps its state"),
    "aws-faults": (["aws-faults"], "restarting it (it holds no state; its rules are AWS_FAULTS again)"),
    "apns-sandbox": (
        ["apns-sandbox"],
        "restarting it; its keys and devices are kept on disk, its inbox of notifications is lost",
    ),
    "emulator": (
        ["emulator", "api", "poller"],
        "it held ALL the service's state in memory (apps, credentials, devices, queued messages), "
        "which is lost; restarting it empty with the table and queues, and the API and poller with it",
    ),
}


def supervise(supervisor: Supervisor) -> None:
    while not supervisor.stopping:
        if supervisor.watchdog is not None and supervisor.watchdog.poll() is not None:
            say(f"the watchdog exited ({_describe(supervisor.watchdog.returncode)}); restarting it")
            supervisor.start_watchdog()
        for name, child in supervisor.children.items():
            status = exit_status(child.proc) if child.proc is not None else None
            if status is None:
                continue
            names, consequence = RESTARTS[name]
            reason = f"the {name} exited ({status})"
            say(f"{reason}; {consequence} (log: {STATE / 'logs' / child.log}.log)")
            supervisor.restart(names, reason)
            say(f"the {name} is back" + (f", with {', '.join(names[1:])}" if len(names) > 1 else ""))
            break
        supervisor.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
