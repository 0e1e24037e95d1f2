#!/bin/sh
# make demo: build, start the sandbox, run examples/demo.lua against it, stop it.
set -eu
cd "$(dirname "$0")/.."
make --no-print-directory -s LUA="${LUA:-lua5.4}"
. scripts/sandbox-env.sh
trap sandbox_stop EXIT INT TERM
echo "sandbox at $SANDBOX_URL"
LUA_CPATH="build/${LUA:-lua5.4}/?.so;;" LUA_PATH="lua/?.lua;lua/?/init.lua;;" "${LUA:-lua5.4}" examples/demo.lua
