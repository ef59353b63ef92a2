#!/bin/sh
# Lab only: stands in for node_modules/.bin/prisma. The lab cannot download Prisma's native
# engines, so the CLI runs its JS/wasm schema engine through adapter-pg (see prisma.config.ts).
# Callers' own settings win; the real CLI does the work.
: "${PRISMA_ENGINES_CHECKSUM_IGNORE_MISSING:=1}"
: "${PRISMA_SCHEMA_ENGINE_BINARY:=/bin/true}"
: "${PRISMA_QUERY_ENGINE_LIBRARY:=/bin/true}"
: "${CHECKPOINT_DISABLE:=1}"
: "${PRISMA_HIDE_UPDATE_MESSAGE:=1}"
export PRISMA_ENGINES_CHECKSUM_IGNORE_MISSING PRISMA_SCHEMA_ENGINE_BINARY PRISMA_QUERY_ENGINE_LIBRARY \
  CHECKPOINT_DISABLE PRISMA_HIDE_UPDATE_MESSAGE
# The wasm engine leaves a 10 s timer armed after a successful deploy; let node exit at once.
NODE_OPTIONS="--require /opt/lab/unref-long-timers.js${NODE_OPTIONS:+ $NODE_OPTIONS}"
export NODE_OPTIONS
exec node /opt/schooliat/repo/Backend/node_modules/prisma/build/index.js "$@"
