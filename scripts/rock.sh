#!/bin/sh
# `make rock`: the source rocks of this commit, packed offline into dist/:
#   agentruns-VERSION-1.src.rock and agentruns-sandbox-VERSION-1.src.rock
# A .src.rock is a zip of the rockspec and the source tree it builds from; `luarocks pack`
# would fetch that tree from the rockspec's URL, so it is assembled here from `git archive`.
set -eu
cd "$(dirname "$0")/.."
version=$(sed -n 's/^#define AGR_VERSION "\([0-9.]*\)"/\1/p' src/agentruns.h)
lua5.4 scripts/rockspecs.lua --check
mkdir -p dist
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git archive --format=tar --prefix=agentruns/ HEAD | tar -x -C "$work"
for rock in agentruns agentruns-sandbox; do
  spec="$rock-$version-1.rockspec"
  if [ "$rock" = agentruns ]; then cp "$spec" "$work/"; else cp "sandbox/$spec" "$work/"; fi
  rm -f "dist/$rock-$version-1.src.rock"
  (cd "$work" && zip -qr "$OLDPWD/dist/$rock-$version-1.src.rock" "$spec" agentruns)
  rm "$work/$spec"
  echo "dist/$rock-$version-1.src.rock"
done
