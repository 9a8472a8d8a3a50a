# One target per habit. Every target installs what it needs into .venv first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint format typecheck unit openapi bench bench-hooks package deploy clean sandbox trust-apple coldstart rehearse scan redrive

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip<26.3"
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

## run: the whole service locally (AWS emulator, API on :8000, queue poller, APNs sandbox)
run: $(STAMP)
	$(PY) -m devstack

## test: lint + types + the whole suite (unit, integration against the emulator, end-to-end), on two workers (a test file stays on one)
test: lint
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=15

## lint: ruff (lint + format check) and mypy on the service
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

## openapi: regenerate openapi.json from the route declarations and models
openapi: $(STAMP)
	$(PY) tools/gen_openapi.py

## redrive: put the local send queue's dead letters back on it (QUEUE=intake for the intake queue); production: docs in README
QUEUE ?= send
redrive: $(STAMP)
	$(PY) tools/redrive.py --queue $(QUEUE)

## sandbox: the APNs sandbox alone
sandbox: $(STAMP)
	$(PY) -m apns_sandbox

clean:
	rm -rf $(VENV) $(SCAN_VENV) .local .pytest_cache .mypy_cache .ruff_cache

## bench: the send pipeline against raw aioapns on the local stack (BENCH_N=20000), the cost of a push and of a group message (BENCH_COST_N=3000), cold start and the first push after a 60 s freeze (BENCH_FREEZE_S), one-to-one latency through make run (BENCH_C2C_N=200)
bench: $(STAMP)
	$(PY) -m bench.freeze
	$(PY) -m bench.send_pipeline
	$(PY) -m bench.c2c_latency

## bench-hooks: sending with a failing webhook receiver vs none, and what receipts cost (BENCH_HOOKS_N=5000)
bench-hooks: $(STAMP)
	$(PY) -m bench.webhooks

## package: the deployable CloudFormation (SAM) template of STAGE (dev|prod) in build/STAGE, offline, cfn-linted
STAGE ?= dev
AWS_DEFAULT_REGION ?= us-east-1
STACK ?= apns-push-$(STAGE)
package: $(STAMP)
	AWS_DEFAULT_REGION=$(AWS_DEFAULT_REGION) $(PY) -m infra.package --stage $(STAGE) --out build/$(STAGE)
	$(VENV)/bin/cfn-lint -- build/$(STAGE)/sam.json
	@echo "cfn-lint: no findings in build/$(STAGE)/sam.json"

## rehearse: the deploy of STAGE rehearsed offline: template -> SAM transform -> stack in the emulator -> a push through the real handlers, AWS's constraints, least privilege (README "Deploy")
rehearse: package
	AWS_DEFAULT_REGION=$(AWS_DEFAULT_REGION) $(PY) -m devstack.rehearse --stage $(STAGE) --build build/$(STAGE)

## scan: checkov over STAGE's packaged template (own virtualenv: checkov pins an older boto3); every finding fixed or justified (infra/checkov.yaml, README "Deploy")
SCAN_VENV := .venv-scan
CHECKOV ?= checkov==3.3.30
$(SCAN_VENV)/.installed:
	@test -x $(SCAN_VENV)/bin/python || $(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/python -m pip install --quiet "$(CHECKOV)"
	@touch $@
scan: package $(SCAN_VENV)/.installed
	BC_SKIP_MAPPING=TRUE $(SCAN_VENV)/bin/checkov --config-file infra/checkov.yaml -f build/$(STAGE)/sam.json

## deploy: package STAGE, upload its code to DEPLOY_BUCKET, create/update the stack apns-push-STAGE (docs/deploy.md)
# The template goes through S3 too: packaged, it is already ~45 KB of CloudFormation's 51,200-byte inline limit.
deploy: package
	@test -n "$(DEPLOY_BUCKET)" || { echo "deploy: set DEPLOY_BUCKET=<an S3 bucket in $(AWS_DEFAULT_REGION)> (docs/deploy.md)" >&2; exit 1; }
	@command -v aws >/dev/null || { echo "deploy: needs the AWS CLI v2 on PATH (docs/deploy.md)" >&2; exit 1; }
	aws cloudformation package --region $(AWS_DEFAULT_REGION) \
		--template-file build/$(STAGE)/sam.json --output-template-file build/$(STAGE)/packaged.yaml \
		--s3-bucket $(DEPLOY_BUCKET) --s3-prefix apns-push/$(STAGE)
	aws cloudformation deploy --region $(AWS_DEFAULT_REGION) --stack-name $(STACK) \
		--template-file build/$(STAGE)/packaged.yaml --s3-bucket $(DEPLOY_BUCKET) --s3-prefix apns-push/$(STAGE) \
		--capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --no-fail-on-empty-changeset \
		$(if $(CFN_ROLE_ARN),--role-arn $(CFN_ROLE_ARN)) --tags app=apns-push stage=$(STAGE)
	aws cloudformation describe-stacks --region $(AWS_DEFAULT_REGION) --stack-name $(STACK) \
		--query 'Stacks[0].Outputs' --output table

## coldstart: import time of each function from the deployment package, with and without .pyc
coldstart: package
	$(PY) tools/coldstart.py --stage $(STAGE)

## trust-apple: fetch Apple's WWDR intermediate CAs into chalicelib/trust/apple-wwdr.pem (needs internet)
APPLE_CA_URL ?= https://www.apple.com/certificateauthority
trust-apple:
	@set -e; tmp=$$(mktemp -d); : > $$tmp/bundle.pem; \
	for ca in AppleWWDRCAG3 AppleWWDRCAG4 AppleWWDRCAG5 AppleWWDRCAG6; do \
	  curl -fsSL -o $$tmp/$$ca.cer $(APPLE_CA_URL)/$$ca.cer; \
	  openssl x509 -inform DER -in $$tmp/$$ca.cer -outform PEM >> $$tmp/bundle.pem; \
	  openssl x509 -in $$tmp/$$ca.cer -inform DER -noout -subject -enddate; \
	done; mv $$tmp/bundle.pem chalicelib/trust/apple-wwdr.pem; rm -rf $$tmp; \
	echo "wrote chalicelib/trust/apple-wwdr.pem"
