#!/bin/sh
# `make test-stress`: the three busted suites (Lua 5.4, LuaJIT, Lua 5.1) from a
# fresh clone of the committed tree, in an owner-only temporary directory,
# while two CPU-bound processes compete for the machine. A spec that depends on
# how fast the machine is, or on who can read the checkout, fails here.
# Ends with the suites' "N passed, N failed" line. BURNERS=n changes the load.
set -u
cd "$(dirname "$0")/.." || exit 1
src=$(pwd)
burners=${BURNERS:-2}

dir=$(mktemp -d "${TMPDIR:-/tmp}/agentruns-stress.XXXXXX") || exit 1
chmod 700 "$dir"
pids=""
cleanup() {
  for pid in $pids; do kill "$pid" 2>/dev/null; done
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

git clone -q "$src" "$dir/agentruns" || exit 1
echo "clone $(git -C "$dir/agentruns" rev-parse --short HEAD) in $dir (mode $(stat -c %a "$dir")), $burners CPU-bound processes beside it"

i=0
while [ "$i" -lt "$burners" ]; do
  # bounded: each ends by itself after an hour even if this script is killed hard
  timeout 3600 sh -c 'while :; do :; done' &
  pids="$pids $!"
  i=$((i + 1))
done

start=$(date +%s)
sh "$dir/agentruns/scripts/test.sh" busted
rc=$?
echo "took $(($(date +%s) - start)) s"
exit $rc
