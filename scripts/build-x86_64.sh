#!/usr/bin/env bash
# The x86_64 build of the stack: `sam build` with `Architecture=x86_64` into
# .aws-sam/build-x86_64, for this machine's instruction set (deployments are arm64). Used by
# `make sam-local` (SAM's local invokes) and `make deploy-local` (the emulator deployment).
set -euo pipefail
cd "$(dirname "$0")/.."
built=".aws-sam/build-x86_64"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# The four bootstraps of the stack in one cargo run first: their link-time optimisation
# then runs in parallel, and `sam build` (one cargo run per function) finds them up to date.
# The orders example in a run of its own: it turns on jwt-auth-core's `http-api` feature
# (its HTTP API), which built together would reach the stack's functions too, and `sam
# build` would then find none of them up to date.
cargo lambda build --release --x86-64 --locked --bin login --bin users --bin authorizer --bin rotation
cargo lambda build --release --x86-64 --locked --bin orders
sam build --build-dir "$built" --parameter-overrides Architecture=x86_64 >"$log" 2>&1 \
  || { cat "$log" >&2; exit 1; }
# The example stack behind this one (examples/orders), for `make deploy-local`.
sam build --template examples/orders/template.yaml --build-dir .aws-sam/build-orders-x86_64 \
  --parameter-overrides Architecture=x86_64 >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
