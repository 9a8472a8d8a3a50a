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
import importlib.util
import json
import marshal
import os
import subprocess
import sys
import zipfile
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


LAMBDA_PYTHON = (3, 11)  # the runtime in .chalice/config.json / chalice package


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
            webhook_queue=env.get("WEBHOOK_QUEUE_NAME", ""),
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
    precompile(out / "deployment.zip")
    problems = check_template(json.loads(template_file.read_text()))
    if problems:
        raise PackageError("the packaged template is wrong:\n  " + "\n  ".join(problems))
    return template_file


def precompile(zip_path: Path) -> int:
    """Add ``__pycache__/*.pyc`` for every module to the Lambda zip (Chalice ships none): each cold
    start then skips compiling. Hash-based, unchecked pycs: the zip's timestamps don't matter.
    Answers the number of modules compiled."""
    if sys.version_info[:2] != LAMBDA_PYTHON:
        raise PackageError(
            f"bytecode must match the Lambda runtime python{LAMBDA_PYTHON[0]}.{LAMBDA_PYTHON[1]}: "
            "run the packaging with that Python"
        )
    tmp = zip_path.with_suffix(".tmp.zip")
    compiled = 0
    with zipfile.ZipFile(zip_path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        names = set(src.namelist())
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, data)
            if not info.filename.endswith(".py") or info.is_dir():
                continue
            folder, _, module = info.filename.rpartition("/")
            prefix = f"{folder}/" if folder else ""
            pyc = f"{prefix}__pycache__/{module[:-3]}.{sys.implementation.cache_tag}.pyc"
            if pyc in names:
                continue
            try:
                code = compile(data, info.filename, "exec", dont_inherit=True)
            except SyntaxError:
                continue  # e.g. a vendored file for another Python version: left to compile at import
            source_hash = importlib.util.source_hash(data)
            header = importlib.util.MAGIC_NUMBER + (0b01).to_bytes(4, "little") + source_hash
            entry = zipfile.ZipInfo(pyc, date_time=info.date_time)
            entry.external_attr = info.external_attr
            dst.writestr(entry, header + marshal.dumps(code), zipfile.ZIP_DEFLATED)
            compiled += 1
    tmp.replace(zip_path)
    return compiled


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
    if not (args.project_dir / "chalicelib" / "trust" / "apple-wwdr.pem").exists():
        print(
            "warning: chalicelib/trust/apple-wwdr.pem is missing: this package refuses .p12 uploads "
            "(503 NotConfigured) until it is there; run `make trust-apple` (see docs/deploy.md)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
