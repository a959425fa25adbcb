#!/usr/bin/env bash
# API fuzzing from openapi.yaml (schemathesis) against the local API (`jwt-auth serve`,
# in-memory store), authenticated as the demo admin. Fails on any 5xx, any answer the spec
# does not declare (status, content type, body schema), or schema-violating input accepted.
#
# Not checked: `unsupported_method` wants 405 for undeclared methods; API Gateway answers
# them 403 "Missing Authentication Token", and the local gateway does the same on purpose.
set -euo pipefail
cd "$(dirname "$0")/.."
schemathesis="$1"

cargo build --locked -q -p jwt-auth-cli --bin jwt-auth
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
log="${TMPDIR:-/tmp}/fuzz-gateway-$port.log"
# Throttling raised out of the way: the fuzzer fires requests far faster than the
# template's limits allow, and what it checks is the functions (throttling has its own test).
target/debug/jwt-auth serve --addr "127.0.0.1:$port" --no-web --log-format json \
  -P ApiThrottlingRateLimit=100000 -P ApiThrottlingBurstLimit=100000 \
  -P LoginThrottlingRateLimit=100000 -P LoginThrottlingBurstLimit=100000 \
  -P RefreshThrottlingRateLimit=100000 -P RefreshThrottlingBurstLimit=100000 >"$log" 2>&1 &
gateway=$!
trap 'kill "$gateway" 2>/dev/null || true' EXIT
base="http://127.0.0.1:$port/prod"
for _ in $(seq 1 100); do curl -s -o /dev/null "$base/login" && break; sleep 0.1; done

login() {
  curl -s -X POST "$base/login" -H 'content-type: application/json' \
    -d '{"username":"admin","password":"local-admin-password"}' \
    | sed -E 's/.*"access_token":"([^"]+)".*/\1/'
}
fuzz() {
  "$schemathesis" run openapi.yaml --url "$base" -H "Authorization: Bearer $(login)" \
    --max-examples 50 --generation-deterministic \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection \
    "$@"
}

# The routes that end the caller's session (logout, log out everywhere, password change)
# take effect at once, so they are fuzzed last, each pass with a fresh admin token: every
# other route first, then each of them on its own.
session_enders='^/(logout|logout/all|password)$'
fuzz --exclude-path-regex "$session_enders"
for path in /password /logout /logout/all; do
  fuzz --include-path "$path"
done

if grep -E '"status":5[0-9][0-9]|" 5[0-9][0-9] ' "$log" >/dev/null; then
  echo "fuzz-api: the gateway answered a 5xx; see $log" >&2
  exit 1
fi
