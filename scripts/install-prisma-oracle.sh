#!/usr/bin/env bash
# Installs the real Prisma CLI used as the test oracle into a cache outside the checkout,
# so every clone and every rerun finds it again. Offline-safe: npm install scripts are skipped
# (they would try to download the native engines); the tests use the JS/wasm engine instead.
set -euo pipefail
version="${PRISMA_VERSION:-6.19.3}"
home="${PRISMA_ORACLE_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/prisma_ops_migrate/prisma-$version}"
stamp="$home/.installed-$version"
if [ -f "$stamp" ] && [ -x "$home/node_modules/.bin/prisma" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "npm is missing: apt-get install -y nodejs npm" >&2; exit 1; }
mkdir -p "$home"
cd "$home"
[ -f package.json ] || printf '{"name":"prisma-oracle","private":true}\n' > package.json
npm install --ignore-scripts --no-audit --no-fund --loglevel=error \
  "prisma@$version" "@prisma/adapter-pg@$version" "pg@8"
touch "$stamp"
echo "Prisma CLI $version installed in $home"
