"""``python -m infra.package --stage dev``: the stage's deployable template, built offline.

1. Reads the stage from .chalice/config.json and the SQS triggers from app.py, the way
   ``chalice package`` reads them, so names and timeouts have one source.
2. Writes the merge template (infra/stack.py) to ``<out>/resources.json``.
3. Runs ``chalice package --merge-template`` into ``<out>``: ``sam.json`` + ``deployment.zip``.
4. Checks the merged template (``stack.check_template``); cfn-lint runs after it (``make package``).

Needs no AWS account: chalice only wants AWS_DEFAULT_REGION (default us-east-1).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

from infra.stack import (
    API_HANDLER,
    STAGE_LIMITS,
    FunctionSpec,
    SqsTrigger,
    StageSpec,
    check_template,
    merge_template,
)

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_REGION = "us-east-1"


class PackageError(Exception):
    """The stage cannot be packaged as declared; the message says what to change."""


def load_spec(project_dir: Path, stage: str) -> StageSpec:
    """The stage as chalice sees it. Imports app.py with the stage's environment (this process's)."""
    from chalice.app import CloudWatchEventConfig, ScheduledEventConfig, SQSEventConfig
    from chalice.cli.factory import CLIFactory
    from chalice.constants import DEFAULT_LAMBDA_TIMEOUT

    if stage not in STAGE_LIMITS:
        raise PackageError(f"stage {stage!r} has no limits: add it to STAGE_LIMITS in infra/stack.py")
    config = CLIFactory(str(project_dir), environ=os.environ).create_config_obj(chalice_stage_name=stage)
    env = config.environment_variables
    app = config.chalice_app  # imported with the stage's environment variables, as chalice package does

    triggers: list[SqsTrigger] = []
    names = [API_HANDLER] if app.routes else []
    for source in app.event_sources:
        names.append(source.name)
        if isinstance(source, SQSEventConfig) and source.queue is not None:
            triggers.append(SqsTrigger(source.name, source.queue, source.maximum_batching_window_in_seconds))
        elif not isinstance(source, ScheduledEventConfig | CloudWatchEventConfig):
            # S3, SNS, streams, websockets, SQS by ARN: their resources would need declaring here too.
            raise PackageError(f"{source.name}: {type(source).__name__} is not declared in infra/stack.py")
    names += [f.name for f in app.pure_lambda_functions]
    functions = []
    for name in names:
        scoped = config.scope(stage, name)
        functions.append(
            FunctionSpec(name, scoped.lambda_timeout or DEFAULT_LAMBDA_TIMEOUT, scoped.reserved_concurrency)
        )
    try:
        return StageSpec(
            app_name=config.app_name,
            stage=stage,
            table_name=env["TABLE_NAME"],
            intake_queue=env["INTAKE_QUEUE_NAME"],
            send_queue=env["SEND_QUEUE_NAME"],
            secrets_prefix=env["SECRETS_PREFIX"],
            operator_key_secret_id=env["OPERATOR_KEY_SECRET_ID"],
            functions=tuple(functions),
            triggers=tuple(triggers),
            limits=STAGE_LIMITS[stage],
        )
    except KeyError as exc:
        raise PackageError(f"stage {stage!r} sets no {exc.args[0]} in .chalice/config.json") from None


def build(project_dir: Path, stage: str, out: Path) -> Path:
    """Package the stage into ``out``; answers the template's path."""
    environ = dict(os.environ)  # before load_spec puts the stage's variables into os.environ
    environ.setdefault("AWS_DEFAULT_REGION", DEFAULT_REGION)
    spec = load_spec(project_dir, stage)
    out.mkdir(parents=True, exist_ok=True)
    merge_file = out / "resources.json"
    merge_file.write_text(json.dumps(merge_template(spec), indent=2) + "\n")
    template_file = out / "sam.json"
    for stale in (template_file, out / "deployment.zip"):
        stale.unlink(missing_ok=True)
    chalice = Path(sys.executable).parent / "chalice"
    cmd = [str(chalice), "--project-dir", str(project_dir), "package", "--stage", stage]
    cmd += [
        "--pkg-format",
        "cloudformation",
        "--merge-template",
        str(merge_file.resolve()),
        str(out.resolve()),
    ]
    lock_file = project_dir / "build" / ".package.lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("w") as lock:
        # Chalice rewrites its zip cache (.chalice/deployments) in place: one packager at a time.
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = subprocess.run(cmd, env=environ, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PackageError(f"chalice package failed:\n{done.stdout}{done.stderr}")
    problems = check_template(json.loads(template_file.read_text()))
    if problems:
        raise PackageError("the packaged template is wrong:\n  " + "\n  ".join(problems))
    return template_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.package", description="Package a stage offline.")
    parser.add_argument("--stage", required=True, choices=sorted(STAGE_LIMITS))
    parser.add_argument("--out", type=Path, help="output directory (default: build/<stage>)")
    parser.add_argument("--project-dir", type=Path, default=PROJECT_DIR)
    args = parser.parse_args(argv)
    out = args.out or args.project_dir / "build" / args.stage
    try:
        template = build(args.project_dir, args.stage, out)
    except PackageError as exc:
        print(f"infra.package: {exc}", file=sys.stderr)
        return 1
    resources = json.loads(template.read_text())["Resources"]
    print(f"{template}: {len(resources)} resources, stage {args.stage}, checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
