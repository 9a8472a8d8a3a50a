"""The packaged templates of every stage, built once per session (chalice package takes seconds)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.iam import ROOT, STAGES


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """stage -> packaged sam.json, built in a subprocess (chalice imports app.py with the stage's env)."""
    pytest.importorskip(
        "chalice", reason="chalice is not installed: `make` installs it (requirements-dev.txt)"
    )
    env = {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"}
    out: dict[str, Path] = {}
    for stage in STAGES:
        target = tmp_path_factory.mktemp(f"package-{stage}")
        done = subprocess.run(
            [sys.executable, "-m", "infra.package", "--stage", stage, "--out", str(target)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        out[stage] = target / "sam.json"
    return out
