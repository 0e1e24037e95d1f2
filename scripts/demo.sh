#!/bin/sh
# make demo: build, start the sandbox, run examples/demo.lua against it, end with a report
# from the command line, stop it.
set -eu
cd "$(dirname "$0")/.."
make --no-print-directory -s LUA="${LUA:-lua5.4}"
. scripts/sandbox-env.sh
trap sandbox_stop EXIT INT TERM
echo "sandbox at $SANDBOX_URL"
LUA_CPATH="build/${LUA:-lua5.4}/?.so;;" LUA_PATH="lua/?.lua;lua/?/init.lua;;" "${LUA:-lua5.4}" examples/demo.lua
echo
echo "== agentruns report happyrobot: the first use case since 2025-11-01"
use_case=$("${LUA:-lua5.4}" bin/agentruns happyrobot list_use_cases --format csv --fields id | sed -n 2p | tr -d '\r')
"${LUA:-lua5.4}" bin/agentruns report happyrobot --use-case-id "$use_case" --since 2025-11-01 --format table
