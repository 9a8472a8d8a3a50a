"""Cold-start import time of each function, measured on the deployment package (`make coldstart`).

Unzips build/<stage>/deployment.zip (from `make package`) and times, in fresh processes, what each
function imports before it can answer: median of several runs, with the precompiled bytecode the
package ships and without it (what Chalice ships by default).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = {
    "api (any route)": "import app",
    "api (credential upload: + cryptography)": "import app; import chalicelib.apns.credentials",
    "fan_out": "import app; from chalicelib.deps import services",
    "send (+ aioapns, payload)": "import app; import chalicelib.services.send.wing, chalicelib.apns.client",
}


def time_import(code: str, cwd: Path, with_pyc: bool, runs: int) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update({"PYTHONPATH": str(cwd), "AWS_DEFAULT_REGION": "us-east-1"})
    if not with_pyc:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-S", "-c", code], cwd=cwd, env=env, check=True)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    package = ROOT / "build" / args.stage / "deployment.zip"
    if not package.exists():
        sys.exit(f"{package} is missing: run `make package STAGE={args.stage}` first")
    tmp = Path(tempfile.mkdtemp(prefix="coldstart-"))
    with_pyc, without = tmp / "with", tmp / "without"
    with zipfile.ZipFile(package) as z:
        z.extractall(with_pyc)
    shutil.copytree(with_pyc, without, ignore=shutil.ignore_patterns("__pycache__"))
    baseline = time_import("pass", with_pyc, True, args.runs)
    print(f"interpreter start alone: {baseline:.0f} ms (subtracted below)")
    print(f"{'function':42} {'with .pyc':>10} {'without':>10}")
    for name, code in FUNCTIONS.items():
        fast = time_import(code, with_pyc, True, args.runs) - baseline
        slow = time_import(code, without, False, args.runs) - baseline
        print(f"{name:42} {fast:8.0f} ms {slow:8.0f} ms")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
