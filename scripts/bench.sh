#!/bin/sh
# The benchmarks: each bench/*.lua script under Lua 5.4 and LuaJIT.
# Figures only; nothing here passes or fails on time.
set -eu
cd "$(dirname "$0")/.."
for script in bench/*.lua; do
  for interp in lua5.4 luajit; do
    echo "== $script ($interp)"
    LUA_CPATH="build/$interp/?.so;;" LUA_PATH="lua/?.lua;lua/?/init.lua;./?.lua;;" \
      timeout 600 "$interp" "$script"
  done
done
