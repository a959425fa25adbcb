#!/usr/bin/env bash
# Runs the README's curl walk-through (the "Quick start" block that starts with `API=`)
# against another base URL, as written, and prints one line per request it makes: method,
# path (user ids as {id}), status, and for an error the gateway's or the problem's message.
# `make sam-local` runs it against `sam local start-api` and the local gateway and compares.
#
#   scripts/walkthrough.sh http://127.0.0.1:3000/prod
set -euo pipefail
cd "$(dirname "$0")/.."
export WALKTHROUGH_API="$1"
WALKTHROUGH_TRACE="$(mktemp)"
export WALKTHROUGH_TRACE
trap 'rm -f "$WALKTHROUGH_TRACE"' EXIT

walkthrough=$(awk '
  /^```sh$/ { block = ""; inside = 1; next }
  /^```$/   { if (inside && block ~ /^API=/) { printf "%s", block; exit } inside = 0; next }
  inside    { block = block $0 "\n" }' README.md)
[ -n "$walkthrough" ] || { echo "walkthrough: no sh block starting with API= in README.md" >&2; exit 1; }

# curl as the walk-through calls it (-s, -X, -H, -d, -w '... %{http_code}...'), recording
# each request before printing what curl would have printed.
curl() {
  local args=() format="" method=GET path="" body status
  while [ $# -gt 0 ]; do
    case "$1" in
      -s) shift ;;
      -w) format="$2"; shift 2 ;;
      -X) method="$2"; args+=("$1" "$2"); shift 2 ;;
      -H | -d) args+=("$1" "$2"); shift 2 ;;
      http*) path="${1#"$WALKTHROUGH_API"}"; args+=("$1"); shift ;;
      *) args+=("$1"); shift ;;
    esac
  done
  body="$(mktemp)"
  status=$(command curl -s --max-time 120 -o "$body" -w '%{http_code}' "${args[@]}")
  local message=""
  if [ "$status" -ge 400 ]; then
    message=$(jq -r '.message // .title // empty' "$body" 2>/dev/null || echo "(not JSON)")
  fi
  printf '%s %s %s %s\n' "$method" "$(sed -E 's/[0-9a-f]{32}/{id}/g' <<<"$path")" "$status" "$message" \
    | sed 's/ *$//' >>"$WALKTHROUGH_TRACE"
  cat "$body"
  rm -f "$body"
  if [ -n "$format" ]; then printf "${format//%\{http_code\}/$status}"; fi
}
export -f curl

sed '1s#^API=.*#API="$WALKTHROUGH_API"#' <<<"$walkthrough" | bash -e >/dev/null
cat "$WALKTHROUGH_TRACE"
