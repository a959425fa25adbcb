#!/usr/bin/env bash
# `make smoke-local`: the smoke suite (scripts/smoke.py) against `make run`'s local API, on a
# free loopback port, with CORS on and the template's throttles, then the server stopped.
# The same suite runs against the emulator deployment (`make deploy-local`) and against a
# stack on AWS (`make smoke API=...`).
set -euo pipefail
cd "$(dirname "$0")/.."
origin="https://app.example.com"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log="$(mktemp)"
# TokenIssuer left to the template's default: the issuer is the API's own URL, as deployed.
# Admins must sign in with a second factor, as deployed (`make run` leaves its demo admin
# free of it): the suite checks the demo admin is held to enrolment, then enrols it.
target/debug/jwt-auth serve --addr "127.0.0.1:$port" --no-web -P "CorsAllowOrigin=$origin" \
  -P MfaRequiredRoles=admin >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -f "$log"' EXIT
ready=""
for _ in $(seq 1 150); do
  if curl -fs -o /dev/null "http://127.0.0.1:$port/prod/.well-known/jwks.json"; then ready=1; break; fi
  kill -0 $server 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.2
done
[ -n "$ready" ] || { echo "smoke-local: the API did not answer within 30 s; its log:" >&2; cat "$log" >&2; exit 1; }
# The demo admin of `make run` (README).
API="http://127.0.0.1:$port/prod" ADMIN_USERNAME=admin ADMIN_PASSWORD=local-admin-password \
  ENROL_GIVEN_ADMIN=1 MFA_REQUIRED_ROLES=admin CORS_ORIGIN="$origin" EXPECT_THROTTLING=1 .tools/venv-smoke/bin/python scripts/smoke.py \
  || { echo "smoke-local: the server's log:" >&2; tail -50 "$log" >&2; exit 1; }
