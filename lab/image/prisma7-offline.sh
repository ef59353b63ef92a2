#!/bin/sh
# Lab only: stands in for node_modules/.bin/prisma on the Prisma 7 host. Prisma 7 always spawns the
# native schema-engine binary, which the lab cannot download: PRISMA_SCHEMA_ENGINE_BINARY names the
# stand-in that runs the wasm engine shipped inside prisma 7.10.1 (never /bin/true: 7.x would then report
# success having applied nothing). Callers' own settings win; the real 7.10.1 CLI does the work.
: "${PRISMA_SCHEMA_ENGINE_BINARY:=/opt/lab/schema-engine.sh}"
: "${CHECKPOINT_DISABLE:=1}"
: "${PRISMA_HIDE_UPDATE_MESSAGE:=1}"
export PRISMA_SCHEMA_ENGINE_BINARY CHECKPOINT_DISABLE PRISMA_HIDE_UPDATE_MESSAGE
exec /usr/local/bin/node /opt/schooliat/repo/Backend/node_modules/prisma/build/index.js "$@"
