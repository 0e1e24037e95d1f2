#!/bin/sh
# The test suites. `sh scripts/test.sh` runs everything `make test` promises and
# ends with one line "N passed, N failed"; `busted` (the three interpreters), `asan` or
# `valgrind` runs just that part.
set -u
cd "$(dirname "$0")/.." || exit 1

LOG=build/test-logs
mkdir -p "$LOG"
PASSED=0
FAILED=0
SKIPPED=0
ROCKS_LUA_PATH="lua/?.lua;lua/?/init.lua;sandbox/lua/?.lua;./?.lua"
LUA54_EXTRA="/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua"
ERROR_LOG="$(pwd)/$LOG/errors.txt"
: >"$ERROR_LOG"
# Every API key the specs use; none may appear in an error value (see record_errors.lua).
SECRETS="tr_sandbox_key hr_sandbox_key pat_sandbox_humm sk-test-5f2c9a7e sk-other-secret"

count() { # name passed failed
  printf '%-28s %4d passed, %d failed\n' "$1" "$2" "$3"
  PASSED=$((PASSED + $2))
  FAILED=$((FAILED + $3))
}

# A check that is one command: passes when it exits 0.
check() { # name command...
  name=$1
  shift
  if "$@" >"$LOG/$name.log" 2>&1; then
    count "$name" 1 0
  else
    count "$name" 0 1
    sed 's/^/    /' "$LOG/$name.log" | tail -n 40
  fi
}

# busted over spec/ in TAP form; every "ok"/"not ok" line counts.
busted_suite() { # name interpreter cpath [prefix command...]
  name=$1 interp=$2 cpath=$3
  shift 3
  out="$LOG/$name.tap"
  LUA_CPATH="$cpath/?.so;;" LUA_PATH="$ROCKS_LUA_PATH;;" LUA_PATH_5_4="$ROCKS_LUA_PATH;;$LUA54_EXTRA" \
    AGENTRUNS_ERROR_LOG="$ERROR_LOG" \
    timeout 1800 "$@" "$interp" /usr/bin/busted --helper=spec/support/record_errors.lua -o TAP spec \
    >"$out" 2>"$LOG/$name.err"
  rc=$?
  ok=$(grep '^ok ' "$out" | grep -vc '# SKIP')
  skip=$(grep '^ok ' "$out" | grep -c '# SKIP')
  SKIPPED=$((SKIPPED + skip))
  bad=$(grep -c '^not ok ' "$out")
  if [ "$rc" != 0 ] && [ "$bad" = 0 ]; then bad=1; fi
  count "$name" "$ok" "$bad"
  if [ "$bad" != 0 ]; then
    grep -A 12 '^not ok ' "$out" | sed 's/^/    /' | head -n 200
    tail -n 30 "$LOG/$name.err" | sed 's/^/    /'
  fi
}

# The suites wrote every error string to $ERROR_LOG: it must hold many, and no key.
no_secrets_in_errors() {
  lines=$(wc -l <"$ERROR_LOG")
  echo "$lines error strings recorded"
  [ "$lines" -gt 100 ] || return 1
  for secret in $SECRETS; do
    if grep -q -F -- "$secret" "$ERROR_LOG"; then
      grep -n -F -- "$secret" "$ERROR_LOG" | head -n 5
      return 1
    fi
  done
}

build() { # make arguments...
  make --no-print-directory -s "$@" >"$LOG/build.log" 2>&1 || { cat "$LOG/build.log"; exit 1; }
}

asan_suite() {
  build LUA=lua5.4 BUILD=build/asan \
    OPT="-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
    LDFLAGS="-fsanitize=address,undefined -Wl,-z,nodelete"
  ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS="suppressions=$(pwd)/scripts/lsan.supp:print_suppressions=0" \
    busted_suite "asan+ubsan (lua5.4)" lua5.4 build/asan env LD_PRELOAD="$(gcc -print-file-name=libasan.so)"
}

# fuzz/unwind_test.c: every allocation of a feed refused in turn; ASan catches a dangling callback.
unwind_test() {
  make --no-print-directory -s build/unwind_test &&
    ASAN_OPTIONS=detect_stack_use_after_return=1:detect_leaks=1 build/unwind_test
}

valgrind_suite() {
  build LUA=lua5.4 BUILD=build/valgrind OPT="-g -O1" LDFLAGS="-Wl,-z,nodelete"
  busted_suite "valgrind (lua5.4)" lua5.4 build/valgrind \
    valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
}

# The library works from `tree`, and the sandbox (when installed there) starts from it.
tree_works() { # tree lua-version interpreter
  tree=$1 ver=$2 interp=$3
  LUA_PATH="$tree/share/lua/$ver/?.lua;$tree/share/lua/$ver/?/init.lua;;" \
    LUA_CPATH="$tree/lib/lua/$ver/?.so;;" "$interp" -e '
      local a = require "agentruns"
      assert(a.sse.parser and a.curl.session and a.sse.version == a._VERSION and a.curl.version == a._VERSION)
      assert(a.toolregistry.new and a.happyrobot.new and a.humm.new and a.gather)
    ' || return 1
  "$tree/bin/agentruns" toolregistry --help | grep -q 'create_run *POST /v1/runs' ||
    { echo "the agentruns command does not run from $tree"; return 1; }
  [ -x "$tree/bin/agentruns-sandbox" ] || return 0
  first=$(timeout 20 "$tree/bin/agentruns-sandbox" --port 0 --exit-on-stdin-eof </dev/null 2>&1 | head -n 1)
  case "$first" in "listening on http://127.0.0.1:"*) ;; *) echo "the sandbox did not start: $first"; return 1 ;; esac
}

# The library rock alone into an empty tree: it works and holds nothing of the sandbox; then the
# sandbox rock beside it starts from that tree.
rock_install() { # lua-version interpreter [extra luarocks args...]
  ver=$1 interp=$2
  shift 2
  tree=$(mktemp -d)
  luarocks --lua-version="$ver" --tree="$tree" make --deps-mode=none agentruns-scm-1.rockspec \
    CURL_INCDIR=/usr/include/x86_64-linux-gnu "$@" &&
    tree_works "$tree" "$ver" "$interp" && [ ! -e "$tree/share/lua/$ver/agentruns/sandbox" ] &&
    (cd sandbox && luarocks --lua-version="$ver" --tree="$tree" make --deps-mode=none agentruns-sandbox-scm-1.rockspec) &&
    tree_works "$tree" "$ver" "$interp" && [ -x "$tree/bin/agentruns-sandbox" ]
  rc=$?
  rm -rf "$tree"
  return $rc
}

# The source rocks `make rock` packs, installed offline into an empty tree.
src_rock_install() { # lua-version interpreter [extra luarocks args...]
  ver=$1 interp=$2
  shift 2
  version=$(sed -n 's/^#define AGR_VERSION "\([0-9.]*\)"/\1/p' src/agentruns.h)
  tree=$(mktemp -d)
  sh scripts/rock.sh >/dev/null &&
    luarocks --lua-version="$ver" --tree="$tree" install --deps-mode=none "dist/agentruns-$version-1.src.rock" \
      CURL_INCDIR=/usr/include/x86_64-linux-gnu "$@" &&
    luarocks --lua-version="$ver" --tree="$tree" install --deps-mode=none \
      "dist/agentruns-sandbox-$version-1.src.rock" &&
    tree_works "$tree" "$ver" "$interp" && [ -x "$tree/bin/agentruns-sandbox" ]
  rc=$?
  rm -rf "$tree"
  return $rc
}

# The README's install lines for `label`, run as written in a fresh clone (so lua_modules starts
# empty); the last one prints the version.
readme_install() { # label
  dir=$(mktemp -d)
  git clone -q . "$dir/agentruns" || return 1
  cp README.md "$dir/agentruns/README.md" # the README as it is now, committed or not
  lines=$(awk -v start="<!-- install $1 -->" '$0 == start { on = 1; next } on && /^<!-- end -->/ { exit }
    on && !/^```/ { print }' README.md)
  [ -n "$lines" ] || { echo "no install lines for $1 in README.md"; return 1; }
  echo "$lines"
  out=$(cd "$dir/agentruns" && sh -ec "$lines" 2>&1)
  rc=$?
  echo "$out" | tail -n 5
  rm -rf "$dir"
  [ $rc = 0 ] && [ "$(echo "$out" | tail -n 1)" = "$(sed -n 's/^#define AGR_VERSION "\([0-9.]*\)"/\1/p' src/agentruns.h)" ]
}

busted_suites() {
  build LUA=lua5.4
  build LUA=luajit
  build LUA=lua5.1
  busted_suite "busted lua5.4" lua5.4 build/lua5.4
  busted_suite "busted luajit" luajit build/luajit
  busted_suite "busted lua5.1" lua5.1 build/lua5.1
}

case "${1:-all}" in
  asan) asan_suite ;;
  valgrind) valgrind_suite ;;
  busted) busted_suites ;;
  all)
    busted_suites
    check "build clang -Werror" make --no-print-directory -s LUA=lua5.4 CC=clang BUILD=build/clang
    check "errors free of API keys" no_secrets_in_errors
    check "luacheck" luacheck -q .
    check "cppcheck" cppcheck --enable=warning,style,performance,portability --std=c99 --quiet \
      --error-exitcode=1 --suppress=toomanyconfigs -I src $(pkg-config --cflags-only-I lua5.4) src/*.c fuzz/*.c
    check "rockspecs current" lua5.4 scripts/rockspecs.lua --check
    check "make docs without warnings" sh scripts/docs.sh build/lua5.4
    check "luarocks lint" sh -c 'for r in *.rockspec sandbox/*.rockspec; do luarocks lint "$r" || exit 1; done'
    check "luarocks make lua5.4" rock_install 5.4 lua5.4
    check "luarocks make luajit" rock_install 5.1 luajit LUA_INCDIR=/usr/include/luajit-2.1
    check "src.rock install lua5.4" src_rock_install 5.4 lua5.4
    check "src.rock install luajit" src_rock_install 5.1 luajit LUA_INCDIR=/usr/include/luajit-2.1
    check "README install lua5.4" readme_install lua5.4
    check "README install luajit" readme_install luajit
    check "a feed an allocation error unwound (ASan)" unwind_test
    asan_suite
    valgrind_suite
    ;;
  *) echo "usage: $0 [all|busted|asan|valgrind]" >&2; exit 2 ;;
esac

if [ "$SKIPPED" -gt 0 ]; then
  echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
else
  echo "$PASSED passed, $FAILED failed"
fi
[ "$FAILED" = 0 ]
