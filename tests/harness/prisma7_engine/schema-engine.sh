#!/bin/sh
# Test harness only: what PRISMA_SCHEMA_ENGINE_BINARY names for the 7.x CLI. Prisma spawns that path
# directly, so it must be an executable; the stand-in itself is the ES module beside this file
# (schema-engine-shim.mjs, see its header), run by the node on PATH.
exec node "$(dirname "$0")/schema-engine-shim.mjs" "$@"
