#!/bin/sh
# Build every libFuzzer target in fuzz/ with clang and run each for $1 seconds
# (default 60), printing the executions each one made.
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-60}
mkdir -p build/fuzz
LUA_CFLAGS=$(pkg-config --cflags lua5.4)
LUA_LIBS=$(pkg-config --libs lua5.4)
for src in fuzz/*_fuzz.c; do
  name=$(basename "$src" .c)
  clang -g -O1 -std=c99 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -D_POSIX_C_SOURCE=200809L -Isrc $LUA_CFLAGS "$src" src/sse.c src/buf.c src/headers.c src/ljson.c $LUA_LIBS -o "build/fuzz/$name"
  corpus="build/fuzz/$name-corpus"
  mkdir -p "$corpus"
  seeds=""
  [ -d "fuzz/corpus/${name%_fuzz}" ] && seeds="fuzz/corpus/${name%_fuzz}"
  "build/fuzz/$name" -max_total_time="$seconds" -print_final_stats=1 "$corpus" $seeds \
    >"build/fuzz/$name.log" 2>&1 || { tail -n 40 "build/fuzz/$name.log"; exit 1; }
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "build/fuzz/$name.log" | grep -o '[0-9]*$')
  echo "$name: $execs executions in ${seconds}s, no findings"
done
