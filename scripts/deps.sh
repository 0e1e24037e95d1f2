#!/bin/sh
# Install the Debian packages the build and the test suites need, when missing.
# Needs root (or sudo) only when something is missing.
set -eu

PACKAGES="gcc make pkg-config cppcheck openssl clang libclang-rt-14-dev libfuzzer-14-dev valgrind
  libcurl4-openssl-dev lua5.4 liblua5.4-dev lua5.1 liblua5.1-0-dev luajit2 libluajit2-5.1-dev
  lua-cjson lua-busted lua-check luarocks lua-http lua-cqueues lua-socket neovim nginx libnginx-mod-http-lua
  zip unzip lua-ldoc lua-argparse tmux bsdutils"

missing=""
for p in $PACKAGES; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$status" in
    *"install ok installed"*) ;;
    *) missing="$missing $p" ;;
  esac
done
[ -z "$missing" ] && exit 0

echo "installing:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "missing packages:$missing (run as root or install them)" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -q $missing >/dev/null
