#!/usr/bin/env bash
# Installs the real Prisma CLIs the tests use as oracles into a cache outside the checkout, so every
# clone and every rerun finds them again: 6.19.3 (the suite's default) and 7.10.1 (the current line).
# Offline-safe: npm install scripts are skipped (they would try to download the native engines).
#   6.19.3 runs its JS/wasm schema engine through @prisma/adapter-pg (../shared/notes/offline-prisma.md).
#   7.10.1 always spawns the native schema-engine binary; the tests point it at
#   tests/harness/prisma7_engine/schema-engine.sh (run from the checkout, not copied), whose .mjs stand-in
#   needs adapter-pg 7.10.1, pg and the wasm-bindgen glue of @prisma/schema-engine-wasm.
# One stamp per version: a rerun with both installed does nothing.
# PRISMA_VERSION=<v> installs only that version; PRISMA_ORACLE_HOME moves the 6.19.3 install (the
# tests and scripts/lab.sh read the same variable).
set -euo pipefail
cache="${XDG_CACHE_HOME:-$HOME/.cache}/prisma_ops_migrate"
versions="${PRISMA_VERSION:-6.19.3 7.10.1}"

# The npm packages of one oracle version.
packages() {
  case "$1" in
    6.*) echo "prisma@$1 @prisma/adapter-pg@$1 pg@8" ;;
    7.10.1)
      # Only the JS glue of schema-engine-wasm is used: the wasm itself ships inside prisma 7.10.1,
      # and this glue build is the one that matches it.
      echo "prisma@$1 @prisma/adapter-pg@$1 pg@8 @prisma/schema-engine-wasm@8.1.0-2.59be4fda12412a79eeb9c2ae727b6aa723593323" ;;
    *) echo "install-prisma-oracle.sh: no package list for Prisma $1" >&2; return 1 ;;
  esac
}

install_version() {
  local version="$1" home="$cache/prisma-$1"
  if [ "$version" = 6.19.3 ] && [ -n "${PRISMA_ORACLE_HOME:-}" ]; then home="$PRISMA_ORACLE_HOME"; fi
  local stamp="$home/.installed-$version"
  if [ -f "$stamp" ] && [ -x "$home/node_modules/.bin/prisma" ]; then
    return 0
  fi
  command -v npm >/dev/null || { echo "npm is missing: apt-get install -y nodejs npm (or run make setup)" >&2; exit 1; }
  local list
  list="$(packages "$version")"
  mkdir -p "$home"
  (
    cd "$home"
    [ -f package.json ] || printf '{"name":"prisma-oracle","private":true}\n' > package.json
    # shellcheck disable=SC2086 # the package list is meant to split into words
    npm install --ignore-scripts --no-audit --no-fund --loglevel=error $list
  )
  touch "$stamp"
  echo "Prisma CLI $version installed in $home"
}

for version in $versions; do
  install_version "$version"
done
