#!/usr/bin/env bash
# Builds one lab host's failure scenario, inside its container (scripts/lab.sh runs it through
# `docker exec`). The schema state is made deliberately with psql; the history rows are written by
# the real Prisma CLI (`npx prisma migrate deploy` as the app user) wherever it can make them.
#
#   scenario.sh db-init             role + database (in the container that runs PostgreSQL)
#   scenario.sh app SCENARIO        app tree, .env, the scenario (in the container with the app)
#   scenario.sh host-files          app checkout without node_modules, for the containerised host
#
# Environment: LAB_PG_PORT, LAB_DB_PASSWORD (given by `docker exec -e`, never on a command line), LAB_PRISMA.
# Idempotent: a finished scenario leaves /opt/lab/scenario.done and is not built twice.
set -euo pipefail

backend=/opt/schooliat/repo/Backend
# LAB_PRISMA=7: the Prisma 7 host's tree keeps its schema and migrations under db/ (its prisma.config.ts).
if [ "${LAB_PRISMA:-6}" = 7 ]; then migrations=$backend/db/migrations; else migrations=$backend/src/prisma/db/migrations; fi
stage=/opt/lab/app
done_marker=/opt/lab/scenario.done
log=/opt/lab/scenario.log
failing=20240301000000_grades
db=schooliat
role=schooliat
port=${LAB_PG_PORT:?LAB_PG_PORT is required}

say() { echo "scenario: $*" | tee -a "$log"; }

# As the app's role over TCP (password auth, like the app); the password stays in the environment.
app_sql() {
  PGPASSWORD=${LAB_DB_PASSWORD:?} psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U "$role" -d "$db" "$@"
}
# As the superuser over the local socket (only where PostgreSQL runs in this container).
super_sql() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$port" "$@"; }

# The real CLI, as the app user, in the project directory: exactly what an operator would run.
deploy() {
  local rc=0
  runuser -l app -c "cd $backend && npx prisma migrate deploy" >>"$log" 2>&1 || rc=$?
  echo "$rc"
}

# Migrations after the given one are moved aside so that a deploy sees the history as it was then
# ("the host had not pulled them yet"); bring_back restores them.
hold_back_from() {
  mkdir -p /opt/lab/held
  for dir in "$migrations"/*/; do
    name=$(basename "$dir")
    if [[ "$name" > "$1" || "$name" == "$1" ]]; then mv "$dir" /opt/lab/held/; fi
  done
}
bring_back() {
  if compgen -G "/opt/lab/held/*" >/dev/null; then mv /opt/lab/held/* "$migrations"/; fi
  chown -R app:app "$migrations"
}

seed() {
  app_sql <<'SQL'
INSERT INTO "School" ("name") VALUES ('North High'), ('South High');
INSERT INTO "User" ("email", "schoolId") VALUES ('admin@north.example', 1), ('admin@south.example', 2);
INSERT INTO "Student" ("name", "schoolId") SELECT 'Student ' || g, 1 + g % 2 FROM generate_series(1, 40) AS g;
SQL
}

# Deploy the first two migrations with the real CLI and add some data: the common starting point.
start_history() {
  hold_back_from "$failing"
  [ "$(deploy)" = 0 ] || { say "deploy of the first migrations failed"; exit 1; }
  seed
}

expect_failed_deploy() {
  local rc
  rc=$(deploy)
  [ "$rc" != 0 ] || { say "deploy was expected to fail but succeeded"; exit 1; }
  grep -q P3018 "$log" || grep -q 'external connector error\|already exists\|permission denied' "$log" \
    || { say "deploy failed for an unexpected reason (see $log)"; exit 1; }
}

write_app_tree() {
  mkdir -p "$backend"
  # The staged tree (scripts/lab.sh) has no node_modules; the image already holds them.
  cp -a "$stage"/. "$backend"/
  umask 077
  printf 'DATABASE_URL="postgresql://%s:%s@127.0.0.1:%s/%s?schema=public"\nNODE_ENV=production\n' \
    "$role" "${LAB_DB_PASSWORD:?}" "$port" "$db" >"$backend/.env"
  umask 022
  # node_modules stay root-owned and read-only to the app, as after a CI-built release.
  find "$backend" -path "$backend/node_modules" -prune -o -exec chown app:app {} +
  chmod 0600 "$backend/.env"
  chown -R app:app /opt/schooliat/shared
  # The backups belong to root, who runs the modules: pg_backup and pg_restore trust no directory another user
  # could write or swap (a backup planted there would be restored as root).
  chown root:root /opt/schooliat/shared /opt/schooliat/shared/backups
  chmod 0755 /opt/schooliat/shared
  chmod 0700 /opt/schooliat/shared/backups
}

build_scenario() {
  case "$1" in
    healthy)
      [ "$(deploy)" = 0 ] || { say "deploy failed on the healthy host"; exit 1; }
      seed
      ;;
    pending_only)
      start_history
      bring_back
      ;;
    applied_but_stuck)
      # The script committed, then the deploy died before writing finished_at (a lost connection,
      # a killed process): the failed migration's SQL by hand, and its row exactly as deploy's
      # start INSERT leaves it (logs, finished_at, rolled_back_at NULL; applied_steps_count 0).
      start_history
      bring_back
      checksum=$(sha256sum "$migrations/$failing/migration.sql" | cut -d' ' -f1)
      {
        echo 'BEGIN;'
        cat "$migrations/$failing/migration.sql"
        echo "INSERT INTO _prisma_migrations (id, checksum, started_at, migration_name)"
        echo "  VALUES (gen_random_uuid()::text, '$checksum', now(), '$failing');"
        echo 'COMMIT;'
      } | app_sql
      ;;
    not_applied)
      # A leftover "Grade" table made the deploy fail on its first statement; someone dropped it
      # afterwards. Nothing of the migration is in the schema; the failed row is the CLI's own.
      start_history
      app_sql -c 'CREATE TABLE "Grade" ("id" INTEGER)'
      bring_back
      expect_failed_deploy
      app_sql -c 'DROP TABLE "Grade"'
      ;;
    partial)
      # The CLI's JS engine runs each statement on its own: the table and its index are created,
      # then adding the foreign key fails (the app role could not reference "Student" then).
      # Left: table and index present, foreign key and column missing.
      start_history
      super_sql -d "$db" -c 'ALTER TABLE "Student" OWNER TO postgres'
      bring_back
      expect_failed_deploy
      super_sql -d "$db" -c "ALTER TABLE \"Student\" OWNER TO $role"
      ;;
    table_made_by_hand)
      # Someone created the table by hand before the release; deploy then failed on
      # "already exists". Left: the hand-made table, nothing else of the migration.
      start_history
      sed -n '/^CREATE TABLE "Grade"/,/^);/p' "/opt/lab/held/$failing/migration.sql" | app_sql
      bring_back
      expect_failed_deploy
      ;;
    *)
      say "unknown scenario: $1"; exit 2 ;;
  esac
}

case "${1:-}" in
  db-init)
    if ! super_sql -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$role'" | grep -q 1; then
      # The app's own role: it owns its database but is no superuser.
      # Through stdin, so the password is on no command line.
      printf "CREATE ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '%s';\n" "$role" "${LAB_DB_PASSWORD:?}" | super_sql
    fi
    if ! super_sql -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
      super_sql -c "CREATE DATABASE $db OWNER $role"
    fi
    ;;
  app)
    scenario=${2:?usage: scenario.sh app SCENARIO}
    if [ -f "$done_marker" ]; then exit 0; fi
    write_app_tree
    build_scenario "$scenario"
    echo "$scenario" >"$done_marker"
    say "$scenario ready"
    ;;
  host-files)
    if [ -f "$done_marker" ]; then exit 0; fi
    write_app_tree
    # On this host the app runs in a container: no node_modules, no prisma outside it.
    rm -rf "$backend/node_modules"
    echo host-files >"$done_marker"
    ;;
  *)
    echo "usage: scenario.sh db-init | app SCENARIO | host-files" >&2; exit 2 ;;
esac
