#!/bin/sh
# `make docs`: generate the LDoc sources and the LuaCATS annotations from the code, then the HTML
# reference in build/docs/. Fails on any LDoc warning. Argument: the build folder of lua5.4.
set -eu
cd "$(dirname "$0")/.."
build=${1:-build/lua5.4}
export LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$build/?.so;;"
rm -rf build/docs-src build/docs
lua5.4 scripts/apidoc.lua ldoc build/docs-src
lua5.4 scripts/apidoc.lua types
out=$(ldoc . 2>&1)
echo "$out"
# LDoc says two lines when all is well; anything else is a warning
extra=$(echo "$out" | grep -v -e '^reading configuration from config.ld$' -e '^output written to ' || true)
if [ -n "$extra" ]; then
  echo "LDoc warnings (above)" >&2
  exit 1
fi
echo "reference: build/docs/index.html; annotations: types/agentruns.lua"
