# lambda-jwt-auth: the commands the README documents.
#   make run    serve the whole API locally (emulated API Gateway, in-memory store)
#   make test   start DynamoDB Local and moto (Secrets Manager) and run every test
#   make bench  print hot-path figures and release bootstrap sizes
#   make sam-local  SAM CLI invokes every function with every event (Docker, offline)
#   make smoke API=<url>  the smoke suite against any deployment (README: smoke-testing)
#   make deploy-local     CloudFormation deploy into an AWS emulator, then the smoke suite
SHELL := /bin/bash
TOOLS := $(CURDIR)/.tools
export PATH := $(TOOLS)/venv-lambda/bin:$(TOOLS)/venv-sam/bin:$(PATH)
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

CARGO_LAMBDA_VERSION := 1.9.2
SAM_CLI_VERSION := 1.170.0
# From 1.54 on cfn-lint no longer runs the SAM transform and passes broken templates.
CFN_LINT_VERSION := 1.53.3
# AWS's serverless rules for cfn-lint (0.3.6 wants a newer cfn-lint), and checkov.
CFN_LINT_SERVERLESS_VERSION := 0.3.5
CHECKOV_VERSION := 3.3.30

ADDR ?= 127.0.0.1:3000

SCHEMATHESIS_VERSION := 4.32.5
# moto stands in for Secrets Manager in the tests: GetSecretValue, PutSecretValue, stages.
MOTO_VERSION := 5.2.5
# The whole-stack emulator of `make deploy-local` and what deploys into it.
MINISTACK_VERSION := 1.5.33
SAM_TRANSLATOR_VERSION := 1.115.0
AWSCLI_VERSION := 1.46.3
# The smoke suite's independent verifier, and boto3 for a rotation through Secrets Manager.
PYJWT_VERSION := 2.15.1
PYOTP_VERSION := 2.9.0
CRYPTOGRAPHY_VERSION := 51.0.1
BOTO3_VERSION := 1.43.106

.PHONY: run run-dynamodb test fuzz bench bench-bootstraps build validate sam-build sam-local tools lint clean screenshot smoke smoke-local deploy-local cli

run: ## Serve the API on http://$(ADDR)/prod with demo users, and the web page on :3001 (no AWS, no Docker, no Java)
	cargo run --locked -p jwt-auth-cli --bin jwt-auth -- serve --addr $(ADDR) $(ARGS)

run-dynamodb: ## Same, against DynamoDB Local (needs Java 17; installs DynamoDB Local)
	scripts/with-dynamodb-local.sh bash -c 'cargo run --locked -p jwt-auth-cli --bin jwt-auth -- serve --addr $(ADDR) --dynamodb-endpoint "$$DYNAMODB_ENDPOINT" $(ARGS)'

test: $(TOOLS)/venv-moto/bin/moto_server ## Start DynamoDB Local and moto (Secrets Manager), install Chromium, run every test
	scripts/ensure-chromium.sh
	WITH_MOTO=$(TOOLS)/venv-moto/bin/moto_server scripts/with-dynamodb-local.sh cargo test --workspace --locked --lib --bins --tests

screenshot: ## docs/web-page.png: the browser client, signed in, taken by headless Chromium
	scripts/ensure-chromium.sh
	BROWSER_SCREENSHOT=$(CURDIR)/docs/web-page.png cargo test --locked -p integration-tests --test browser

fuzz: $(TOOLS)/venv-fuzz/bin/schemathesis ## Fuzz the local API from openapi.yaml (schemathesis)
	scripts/fuzz-api.sh $(TOOLS)/venv-fuzz/bin/schemathesis

bench: build bench-bootstraps $(TOOLS)/venv-moto/bin/moto_server ## Hot paths and cold starts (medians, with same-run floors) and bootstrap sizes
	cargo bench --locked -p integration-tests --bench hot_paths
	WITH_MOTO=$(TOOLS)/venv-moto/bin/moto_server scripts/with-dynamodb-local.sh cargo bench --locked -p integration-tests --bench cold_start
	@echo "release bootstrap sizes (arm64, stripped, as deployed):"
	@for f in login users authorizer rotation; do \
	  printf '  %-11s %8d bytes\n' $$f $$(stat -c %s target/lambda/$$f/bootstrap); done

# The cold-start bench's bootstraps: ours and its two floors, for this machine (x86_64),
# with the release profile, in their own directory (target/lambda holds the arm64 ones).
bench-bootstraps: $(TOOLS)/venv-lambda/bin/cargo-lambda
	cargo lambda build --release --x86-64 --locked --lambda-dir target/lambda-x86_64 \
	  --bin login --bin users --bin authorizer --bin floor-runtime --bin floor-dynamodb

lint: ## rustfmt and clippy, as CI runs them
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

build: $(TOOLS)/venv-lambda/bin/cargo-lambda ## Release bootstraps for Lambda (arm64)
	cargo lambda build --release --arm64 --locked --bin login --bin users --bin authorizer --bin rotation

validate: $(TOOLS)/venv-sam/bin/sam $(TOOLS)/venv-sam/.serverless-rules-$(CFN_LINT_SERVERLESS_VERSION) $(TOOLS)/venv-checkov/bin/checkov ## sam validate --lint, AWS's serverless rules and checkov on the template (offline); each accepted finding is skipped where it stands, with its reason
	sam validate --lint
	sam validate --lint --template examples/orders/template.yaml
	$(TOOLS)/venv-sam/bin/cfn-lint template.yaml examples/orders/template.yaml -a cfn_lint_serverless.rules
	$(TOOLS)/venv-checkov/bin/checkov -f template.yaml -f examples/orders/template.yaml --framework cloudformation --skip-download --compact --quiet

sam-build: $(TOOLS)/venv-sam/bin/sam $(TOOLS)/venv-lambda/bin/cargo-lambda ## sam build (runs cargo lambda)
	sam build

sam-local: $(TOOLS)/venv-sam/bin/sam $(TOOLS)/venv-lambda/bin/cargo-lambda ## `sam local invoke` of every event, and the README walk-through via `sam local start-api` (offline; Docker from Debian; root)
	scripts/sam-local.sh

smoke: $(TOOLS)/venv-smoke/bin/python ## The smoke suite against a deployment: make smoke API=<ApiUrl> ADMIN_USERNAME=... ADMIN_PASSWORD=... [ROTATE=1 SIGNING_KEYS_SECRET=<arn>] [CORS_ORIGIN=...] [EXPECT_THROTTLING=1]
	$(TOOLS)/venv-smoke/bin/python scripts/smoke.py

smoke-local: cli $(TOOLS)/venv-smoke/bin/python ## The smoke suite against `make run`'s local API (CORS on, throttles)
	scripts/smoke-local.sh

deploy-local: cli $(TOOLS)/venv-sam/bin/sam $(TOOLS)/venv-lambda/bin/cargo-lambda $(TOOLS)/venv-ministack/bin/ministack $(TOOLS)/venv-smoke/bin/python ## Deploy template.yaml through CloudFormation into MiniStack (offline), run the smoke suite, remove it all
	scripts/build-x86_64.sh
	$(TOOLS)/venv-ministack/bin/python scripts/deploy-local.py

cli:
	cargo build --locked -q -p jwt-auth-cli --bin jwt-auth

tools: $(TOOLS)/venv-lambda/bin/cargo-lambda $(TOOLS)/venv-sam/bin/sam

# cargo-lambda from PyPI brings zig (for arm64 linking); `cargo install` would take ~9 min.
$(TOOLS)/venv-lambda/bin/cargo-lambda:
	python3 -m venv $(TOOLS)/venv-lambda
	$(TOOLS)/venv-lambda/bin/pip install -q "cargo-lambda==$(CARGO_LAMBDA_VERSION)"

$(TOOLS)/venv-sam/bin/sam:
	python3 -m venv $(TOOLS)/venv-sam
	$(TOOLS)/venv-sam/bin/pip install -q "aws-sam-cli==$(SAM_CLI_VERSION)" "cfn-lint==$(CFN_LINT_VERSION)"

$(TOOLS)/venv-sam/.serverless-rules-$(CFN_LINT_SERVERLESS_VERSION): $(TOOLS)/venv-sam/bin/sam
	$(TOOLS)/venv-sam/bin/pip install -q "cfn-lint-serverless==$(CFN_LINT_SERVERLESS_VERSION)" "cfn-lint==$(CFN_LINT_VERSION)"
	touch $@

$(TOOLS)/venv-checkov/bin/checkov:
	python3 -m venv $(TOOLS)/venv-checkov
	$(TOOLS)/venv-checkov/bin/pip install -q "checkov==$(CHECKOV_VERSION)"

$(TOOLS)/venv-moto/bin/moto_server:
	python3 -m venv $(TOOLS)/venv-moto
	$(TOOLS)/venv-moto/bin/pip install -q "moto[server]==$(MOTO_VERSION)"

$(TOOLS)/venv-ministack/bin/ministack:
	python3 -m venv $(TOOLS)/venv-ministack
	$(TOOLS)/venv-ministack/bin/pip install -q "ministack==$(MINISTACK_VERSION)" \
	  "aws-sam-translator==$(SAM_TRANSLATOR_VERSION)" "awscli==$(AWSCLI_VERSION)" \
	  "cryptography==$(CRYPTOGRAPHY_VERSION)"

$(TOOLS)/venv-smoke/bin/python:
	python3 -m venv $(TOOLS)/venv-smoke
	$(TOOLS)/venv-smoke/bin/pip install -q "PyJWT[crypto]==$(PYJWT_VERSION)" \
	  "cryptography==$(CRYPTOGRAPHY_VERSION)" "boto3==$(BOTO3_VERSION)" "pyotp==$(PYOTP_VERSION)"

$(TOOLS)/venv-fuzz/bin/schemathesis:
	python3 -m venv $(TOOLS)/venv-fuzz
	$(TOOLS)/venv-fuzz/bin/pip install -q "schemathesis==$(SCHEMATHESIS_VERSION)"

clean:
	cargo clean
	rm -rf .aws-sam
