#!/bin/sh
# The benchmarks behind `make bench`: agentruns side by side with what users would pick
# instead, in one run (bench/README.md explains every figure).
#
#   1. SSE parsing: agentruns.sse (Lua 5.4, LuaJIT) vs npm eventsource-parser vs a pure-Lua
#      parser, on three corpora generated once into build/bench/, held in memory and read
#      from their files
#   2. Requests: get_run against a local nginx vs a C libcurl loop, LuaSocket, the curl CLI
#   3. Concurrency: 50 calls answered in 200 ms each, gathered vs one vs sequential
#   4. Memory: peak RSS of a long stream_events and a long each_run, at two sizes each;
#      4b. 100 and 1,000 live streams in one process (Lua, and nginx light threads)
#   5. Neovim: timer lag while requests and a stream run on the editor's loop
#
# Every server it starts (nginx, the sandbox) listens on 127.0.0.1 and is stopped on exit,
# however the script ends. Clients run on one CPU and servers on another (taskset). Loops are
# bounded in count and time; figures only, nothing passes or fails on time.
set -eu
cd "$(dirname "$0")/.."

OUT=build/bench
RESULTS=$OUT/results.tsv
LOG=$OUT/bench.log
CHUNK=16384
mkdir -p "$OUT"
: > "$RESULTS"
: > "$LOG"
export LUA_PATH="lua/?.lua;lua/?/init.lua;./?.lua;;"

NGINX_PID=""
CLIENT_NGINX_PID=""
SANDBOX_PID=""
cleanup() {
  if [ -n "$CLIENT_NGINX_PID" ]; then
    kill -TERM "$CLIENT_NGINX_PID" 2>/dev/null || true
    wait "$CLIENT_NGINX_PID" 2>/dev/null || true
    CLIENT_NGINX_PID=""
  fi
  if [ -n "$NGINX_PID" ]; then
    kill -TERM "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
    NGINX_PID=""
  fi
  if [ -n "$SANDBOX_PID" ]; then
    kill -TERM "$SANDBOX_PID" 2>/dev/null || true
    wait "$SANDBOX_PID" 2>/dev/null || true
    SANDBOX_PID=""
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# CPUs: the client on one, the servers on another (both on CPU 0 on a one-CPU machine).
if [ "$(nproc)" -ge 2 ]; then SERVER_CPU=0; CLIENT_CPU=1; else SERVER_CPU=0; CLIENT_CPU=0; fi

# Run a benchmark program: its records go to the results, its errors to the log; a failure
# is reported and the run goes on with the next measurement.
measure() {
  if ! timeout 300 "$@" >> "$RESULTS" 2>> "$LOG"; then
    echo "  (failed: $*; see $LOG)"
    tail -n 3 "$LOG" | sed 's/^/  | /'
  fi
}
lua_measure() { # interpreter, script, args...
  interp=$1
  shift
  measure env LUA_CPATH="build/$interp/?.so;$OUT/$interp/?.so;;" taskset -c "$CLIENT_CPU" "$interp" "$@"
}
report() { lua5.4 bench/report.lua "$1" "$RESULTS" || echo "  (no $1 table: see the error above)"; }
have() { command -v "$1" >/dev/null 2>&1; }

# LuaSocket is a benchmark subject only, so it is installed here rather than by `make deps`.
if ! dpkg-query -W -f='${Status}' lua-socket 2>/dev/null | grep -q "install ok installed"; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing lua-socket (for the LuaSocket rows)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q lua-socket >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q lua-socket >/dev/null 2>&1; } || true
  fi
fi

# Start nginx from a template: prefix, template, root, port, CPU. Its pid lands in STARTED_PID.
start_nginx() {
  mkdir -p "$1/tmp"
  sed -e "s|@PREFIX@|$1|g; s|@ROOT@|$3|g; s|@PORT@|$4|g" "$2" > "$1/nginx.conf"
  : > "$1/error.log"
  taskset -c "$5" nginx -p "$1" -c "$1/nginx.conf" -e "$1/error.log" &
  STARTED_PID=$!
}

# A free TCP port on 127.0.0.1.
free_port() {
  lua5.4 -e 'local s = require "socket"; local t = assert(s.bind("127.0.0.1", 0));
             local _, port = t:getsockname(); t:close(); print(port)' 2>/dev/null ||
    echo $((20000 + $$ % 20000))
}

started=$(date +%s)
echo "agentruns benchmarks"
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), kernel $(uname -r)"
echo "load average at start: $(cut -d ' ' -f 1-3 /proc/loadavg); client on CPU $CLIENT_CPU, servers on CPU $SERVER_CPU"
echo "versions: $(lua5.4 -v 2>&1 | cut -d ' ' -f 1-2), $(luajit -v 2>&1 | cut -d ' ' -f 1-2)," \
  "node $(node --version 2>/dev/null || echo none), $(nginx -v 2>&1 | sed 's/.*: //'), libcurl $(curl-config --version 2>/dev/null | cut -d ' ' -f 2)"

# ---- 1. SSE parsing -----------------------------------------------------------------------
echo
echo "== 1. SSE parsing: the same bytes for every parser, $((CHUNK / 1024)) KB chunks; median (min-max)"
lua5.4 bench/sse_corpus.lua "$OUT"
if have node && have npm; then
  if [ ! -f bench/node_modules/eventsource-parser/package.json ]; then
    npm install --no-save --no-audit --no-fund --prefix bench eventsource-parser@3 >> "$LOG" 2>&1 ||
      echo "  (npm install eventsource-parser failed; see $LOG)"
  fi
  if [ -f bench/node_modules/eventsource-parser/package.json ]; then
    measure taskset -c "$CLIENT_CPU" node --expose-gc bench/sse_bench.mjs "$OUT/sse-corpora.txt" "$CHUNK"
  fi
else
  echo "  (node/npm not found: no eventsource-parser rows)"
fi
# the parser alone, in C with no Lua: what parsing costs by itself
if cc -std=c99 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra -Isrc -o "$OUT/sse_alone" bench/sse_alone.c src/sse.c \
  src/buf.c >> "$LOG" 2>&1; then
  measure taskset -c "$CLIENT_CPU" "$OUT/sse_alone" "$OUT/sse-corpora.txt" "$CHUNK"
else
  echo "  (sse_alone did not build; see $LOG)"
fi
for interp in lua5.4 luajit; do
  # the table floor, built against this interpreter's headers (bench only, not in the rock)
  mkdir -p "$OUT/$interp"
  # shellcheck disable=SC2046 # the flags are words
  cc -std=c99 -O2 -shared -fPIC $(pkg-config --cflags "$interp" 2>/dev/null) -o "$OUT/$interp/table_floor.so" \
    bench/table_floor.c >> "$LOG" 2>&1 || echo "  (table floor for $interp did not build; see $LOG)"
  lua_measure "$interp" bench/sse_bench.lua "$OUT/sse-corpora.txt" "$CHUNK"
  lua_measure "$interp" bench/sse_bench.lua "$OUT/sse-corpora.txt" "$CHUNK" read # a process of its own
done
report sse

# ---- the local nginx (requests, concurrency, memory) ---------------------------------------
lua5.4 bench/http_fixtures.lua "$OUT/www"
NGX="$PWD/$OUT/nginx"
PORT=$(free_port)
start_nginx "$NGX" bench/nginx.conf "$PWD/$OUT/www" "$PORT" "$SERVER_CPU"
NGINX_PID=$STARTED_PID
BASE="http://127.0.0.1:$PORT"
RUN_ID=9e3779b1-0001-4001-8007-000000000001
tries=0
until curl -sf -o /dev/null "$BASE/v1/runs/$RUN_ID"; do
  tries=$((tries + 1))
  if [ "$tries" -gt 50 ] || ! kill -0 "$NGINX_PID" 2>/dev/null; then
    echo "nginx did not start:"
    cat "$NGX/error.log"
    exit 1
  fi
  sleep 0.1
done

# ---- 2. Requests --------------------------------------------------------------------------
echo
echo "== 2. Requests: GET $BASE/v1/runs/<uuid> (1 KB JSON), nginx 1 worker, keep-alive;" \
  "microseconds per request, median (min-max)"
# shellcheck disable=SC2046 # the flags are words
cc -O2 -o "$OUT/curl_loop" bench/curl_loop.c $(pkg-config --cflags --libs libcurl 2>/dev/null || echo -lcurl)
measure taskset -c "$CLIENT_CPU" "$OUT/curl_loop" "$BASE/v1/runs/$RUN_ID" 5000 7
for interp in lua5.4 luajit; do
  lua_measure "$interp" bench/request_bench.lua agentruns "$BASE" "$RUN_ID"
  lua_measure "$interp" bench/request_bench.lua core "$BASE" "$RUN_ID"
  if LUA_CPATH=";;" "$interp" -e 'require "socket.http"' 2>/dev/null; then
    lua_measure "$interp" bench/request_bench.lua luasocket "$BASE" "$RUN_ID"
  else
    echo "  (LuaSocket not installed for $interp: no row)"
  fi
done
if have curl; then lua_measure lua5.4 bench/request_bench.lua curl-cli "$BASE" "$RUN_ID"; fi
report requests

# ---- 4b. Streams at scale -----------------------------------------------------------------
echo
echo "== 4b. Streams at scale: N concurrent stream_events in one process, each stream 5 events/s" \
  "for 5 s (nginx /live); latency is server send -> Lua sees it"
for interp in lua5.4 luajit; do
  for n in 100 1000; do lua_measure "$interp" bench/streams_bench.lua "$BASE" "$n"; done
done
# The same inside nginx: N light threads on the cosocket transport, in a client nginx of its own.
CNGX="$PWD/$OUT/nginx-client"
CPORT=$(free_port)
start_nginx "$CNGX" bench/nginx_client.conf "$PWD" "$CPORT" "$CLIENT_CPU"
CLIENT_NGINX_PID=$STARTED_PID
tries=0
until curl -s -o /dev/null "http://127.0.0.1:$CPORT/"; do
  tries=$((tries + 1))
  if [ "$tries" -gt 50 ] || ! kill -0 "$CLIENT_NGINX_PID" 2>/dev/null; then break; fi
  sleep 0.1
done
for n in 100 1000; do
  measure curl -sf --max-time 120 "http://127.0.0.1:$CPORT/streams?n=$n&base=$BASE"
done
kill -TERM "$CLIENT_NGINX_PID" 2>/dev/null || true
wait "$CLIENT_NGINX_PID" 2>/dev/null || true
CLIENT_NGINX_PID=""
report streams

# ---- the sandbox (concurrency, Neovim) -----------------------------------------------------
taskset -c "$SERVER_CPU" lua5.4 sandbox/bin/agentruns-sandbox --port 0 --step-delay 0.05 --keepalive 0.2 \
  --retry-ms 100 > "$OUT/sandbox.out" 2>> "$LOG" < /dev/null &
SANDBOX_PID=$!
SANDBOX=""
tries=0
while [ -z "$SANDBOX" ]; do
  SANDBOX=$(sed -n 's/^listening on \(http:.*\)$/\1/p' "$OUT/sandbox.out")
  tries=$((tries + 1))
  if [ -z "$SANDBOX" ] && { [ "$tries" -gt 150 ] || ! kill -0 "$SANDBOX_PID" 2>/dev/null; }; then
    echo "the sandbox did not start; see $LOG"
    exit 1
  fi
  [ -n "$SANDBOX" ] || sleep 0.1
done

# ---- 3. Concurrency -----------------------------------------------------------------------
echo
echo "== 3. Concurrency: get_run on a server that answers in 200 ms (nginx: ngx.sleep;" \
  "sandbox: x-sandbox-fault delay=0.2); seconds, median (min-max)"
for interp in lua5.4 luajit; do
  lua_measure "$interp" bench/gather_bench.lua nginx "$BASE/slow" x "$RUN_ID" - 1
  lua_measure "$interp" bench/gather_bench.lua sandbox "$SANDBOX/toolregistry" tr_sandbox_key - delay=0.2 0
done
report gather

# ---- 4. Memory ----------------------------------------------------------------------------
echo
echo "== 4. Memory: peak RSS (VmHWM) of one process per walk against its RSS just before the loop;" \
  "walks stop after 20 s"
for interp in lua5.4 luajit; do
  for mb in 256 1024; do lua_measure "$interp" bench/memory_bench.lua stream "$BASE" "$mb" 20; done
  for set in u10k u100k; do lua_measure "$interp" bench/memory_bench.lua each_run "$BASE" "$set" 20; done
done
report memory

# ---- 5. Neovim ----------------------------------------------------------------------------
echo
echo "== 5. Neovim: headless nvim (LuaJIT build) running spec/support/nvim_driver.lua:" \
  "20 requests + 1 stream on the editor's loop"
if have nvim; then
  measure env LUA_CPATH="build/lua5.4/?.so;;" lua5.4 bench/neovim_bench.lua "$SANDBOX" 3
  report neovim
else
  echo "  (nvim not found)"
fi

cleanup
echo
echo "load average at end: $(cut -d ' ' -f 1-3 /proc/loadavg); took $(($(date +%s) - started)) s;" \
  "records in $RESULTS"
