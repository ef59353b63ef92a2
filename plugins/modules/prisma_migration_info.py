#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: prisma_migration_info
short_description: Tell exactly where a database's Prisma migration history stands
version_added: 1.0.0
description:
  - Reads C(_prisma_migrations) and, when given, the app's migrations folder, and reports every migration with one
    state (applied, failed, rolled_back, pending, missing_locally, modified), whether C(prisma migrate deploy) is
    blocked (P3009), what deploy would apply next and in which order, and who holds Prisma's advisory lock.
  - Unlike C(prisma migrate status), it reports migrations edited after apply, migrations in the database but not on
    disk, and rolled-back migrations that deploy will re-run.
  - Read-only. The session is read-only at the PostgreSQL level, and Prisma's lock is never taken.
author:
  - prisma_ops.migrate maintainers (@prisma-ops)
extends_documentation_fragment:
  - prisma_ops.migrate.connection
  - prisma_ops.migrate.controller_replay
attributes:
  check_mode:
    support: full
    description: The module only reads, so check mode runs it in full.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
options:
  migrations_dir:
    description:
      - Path, on the managed host, of the Prisma migrations folder (the one holding C(migration_lock.toml)), for
        example C(/opt/app/repo/Backend/prisma/migrations).
      - Without it, only the database side is reported; RV(pending), RV(modified) and RV(missing_locally) are then
        empty because they need the folder.
      - Required when O(evidence=true).
    type: path
  evidence:
    description:
      - For each failed migration, decide from the live schema whether its C(migration.sql) was applied, not applied,
        partially applied, or cannot be told, and recommend an action (RV(evidence)).
      - Each statement is parsed with PostgreSQL's own parser (pglast) and its effect checked in the catalogs, judged
        against the state the whole migration would leave. Needs the C(pglast) Python package on the managed host.
      - When a scratch database is reachable (O(shadow_url), or a user with CREATEDB who may create and drop a
        temporary database), migrations 1..N-1 and 1..N are also replayed there and the live schema compared with both.
        When none is, they are replayed on the controller (O(controller_replay)) and the evidence judged again there.
        If the two methods disagree, the verdict is C(unknown).
      - Nothing is written to the inspected database; the replay writes only in the temporary database it creates and
        always drops, or inside one transaction in the O(shadow_url) database that is always rolled back.
    type: bool
    default: false
  shadow_url:
    description:
      - A PostgreSQL URL of an empty scratch database for the shadow replay of O(evidence). It must not be the
        inspected database, and must hold nothing at all (not even a C(_prisma_migrations) table); one that holds
        anything is refused and left as it is.
      - The replay runs there in one transaction that is always rolled back, so nothing is ever dropped from it and
        check mode writes nothing. The migrations' own C(BEGIN)/C(COMMIT) are left out and C(CONCURRENTLY) dropped;
        a statement that cannot run in a transaction block makes the replay say it cannot tell (verdict from the
        probes alone, or C(unknown)). Hosts that share one O(shadow_url) replay one after the other.
      - Without it, the replay uses a temporary database when the user has CREATEDB, and otherwise runs on the
        controller (O(controller_replay)).
    type: str
  replay_input:
    description:
      - Set by the action plugin (see O(controller_replay)); leave unset. Returns what a replay on the controller
        needs, for failed migrations whose replay could not run on the host.
    type: bool
    default: false
seealso:
  - name: Prisma Migrate in production
    description: How Prisma records and resolves failed migrations.
    link: https://www.prisma.io/docs/orm/prisma-migrate/workflows/patching-and-hotfixing
"""

EXAMPLES = r"""
- name: Read the history of the app's database, with the URL from the app's own .env on the host
  prisma_ops.migrate.prisma_migration_info:
    env_file: /opt/schooliat/repo/Backend/.env
    migrations_dir: /opt/schooliat/repo/Backend/src/prisma/db/migrations
  register: history

- name: Stop when deploy is blocked, naming the failed migrations
  ansible.builtin.assert:
    that: not history.deploy_blocked
    fail_msg: "{{ history.summary }}"

- name: Connect with discrete options and the password from the vault
  prisma_ops.migrate.prisma_migration_info:
    login_host: 127.0.0.1
    login_port: 5432
    login_user: app
    login_password: "{{ vault_app_db_password }}"
    login_db: app
    schema: public
  register: db_side

- name: Decide from the live schema what each failed migration really did
  prisma_ops.migrate.prisma_migration_info:
    env_file: /opt/schooliat/repo/Backend/.env
    migrations_dir: /opt/schooliat/repo/Backend/src/prisma/db/migrations
    evidence: true
  register: evidence_run
"""

RETURN = r"""
summary:
  description: One line that says where the history stands and what deploy would do.
  returned: success
  type: str
  sample: "deploy blocked (P3009) by failed migration 20250102000000_add_posts; 1 migration to deploy"
table_exists:
  description:
    - Whether a relation named C(_prisma_migrations) exists in the schema. A missing table is a state, not an error.
    - A view, partitioned table, materialized view, foreign table or sequence of that name counts as present (never
      P3005); see RV(table_kind) and RV(table_finding).
  returned: success
  type: bool
table_kind:
  description: What C(_prisma_migrations) is - C(table), C(view), C(partitioned table), C(materialized view),
    C(foreign table), C(sequence) - or null when there is none.
  returned: success
  type: str
table_finding:
  description:
    - Null for a plain table. Otherwise why a person must look - Prisma's deploy looks only for a plain table, so it
      would report P3005 or fail creating one, and this collection never writes into anything else (resolve and
      completion refuse with code C(history_not_a_table)). The rows are read when the relation can be read.
    - It also blocks deploy (RV(deploy_blocked)) and makes the host not in sync.
  returned: success
  type: str
schema_exists:
  description: Whether the PostgreSQL schema itself exists.
  returned: success
  type: bool
baseline_needed:
  description: The schema has tables but no C(_prisma_migrations), so deploy would refuse with P3005.
  returned: success
  type: bool
deploy_blocked:
  description: Some row has C(finished_at) and C(rolled_back_at) both NULL, so deploy refuses with P3009; or the
    history is not a plain table (RV(table_finding)); or C(migration_lock.toml) names another provider, so deploy
    refuses with P3019 (RV(provider_finding)).
  returned: success
  type: bool
provider_finding:
  description:
    - Null when C(migration_lock.toml) names C(postgresql) exactly, when there is no lockfile, or when no
      O(migrations_dir) was given. Otherwise C(prisma migrate deploy) (and C(migrate status), C(migrate resolve))
      refuses the folder with P3019 before it reads any row; RV(deploy_blocked) is then true and the host is not in
      sync.
    - Prisma compares the lockfile's first line starting with C(provider), minus C(provider = ) and double quotes,
      verbatim - so C(provider="postgresql") or an indented line is refused too.
    - The migrations were written for another database (a SQLite history, say) - the fix is a PostgreSQL history
      (a new baseline), never C(prisma db push) on production. This collection does not write anything for it.
  returned: success
  type: dict
  sample:
    code: P3019
    lock_provider: sqlite
    expected: postgresql
    message: "prisma migrate deploy refuses with P3019 (and so do migrate status and migrate resolve), because ..."
  contains:
    code:
      description: Always C(P3019).
      type: str
    lock_provider:
      description: The provider as Prisma reads it from the lockfile, or null when no line starts with C(provider).
      type: str
    expected:
      description: Always C(postgresql).
      type: str
    message:
      description: One sentence - what Prisma does, why, and what the operator must do.
      type: str
in_sync:
  description:
    - True when the table exists, nothing is failed, nothing is left to deploy, nothing was edited after apply and
      nothing in the database is missing on disk.
    - Without O(migrations_dir) it reflects the database side only.
  returned: success
  type: bool
migrations:
  description: Every migration known locally or in the database, in Prisma's order (JavaScript localeCompare).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Folder name of the migration.
      type: str
    state:
      description: One of applied, failed, rolled_back, pending, missing_locally, modified.
      type: str
    will_deploy:
      description: C(prisma migrate deploy) would run this migration (pending, or rolled back with a local folder).
      type: bool
    local:
      description: The folder exists locally (null when no O(migrations_dir) was given).
      type: bool
    script_present:
      description: The folder has a readable C(migration.sql) (null when there is no folder).
      type: bool
    in_database:
      description: At least one row of this name exists.
      type: bool
    attempts:
      description: Number of rows of this name (each deploy attempt and each C(resolve --applied) adds one).
      type: int
    started_at:
      description: C(started_at) of the row that decides the state (ISO 8601).
      type: str
    finished_at:
      description: C(finished_at) of that row.
      type: str
    rolled_back_at:
      description: C(rolled_back_at) of that row.
      type: str
    applied_steps_count:
      description: C(applied_steps_count) of that row.
      type: int
    checksum_ok:
      description:
        - The local script matches the row's checksum, with Prisma's CRLF/LF tolerance. Null when either side is
          missing.
      type: bool
    checksum_database:
      description: The checksum stored in the row; null when RV(migrations[].checksum_ok) is true.
      type: str
    checksum_local:
      description:
        - sha256 of the local C(migration.sql), what Prisma would store; null when RV(migrations[].checksum_ok) is
          true.
      type: str
    logs:
      description: The failure log of a failed migration (first 4000 characters).
      type: str
    error:
      description: The database error parsed from the log of a failed migration.
      type: dict
      contains:
        sqlstate:
          description: The SQLSTATE, when the log has one (the native engine writes it).
          type: str
        message:
          description: The database's error message.
          type: str
        engine:
          description: Which engine wrote the log, native or driver_adapter, or unknown.
          type: str
    log_hint:
      description:
        - For a failed migration, which statement of its C(migration.sql) the failed row's log points at, read from
          the log's C(Position:) block (native engine) or from the object its error names. Null for other states.
        - A hint for the operator only. No verdict, recommendation or action reads it; RV(evidence) decides from the
          live schema. It names a statement only when exactly one fits, and says how it read the log.
      type: dict
      contains:
        sqlstate:
          description: The SQLSTATE the log gives (the native engine's C(Database error code)), or null.
          type: str
        message:
          description: The database's error message, cleaned of control characters and clipped.
          type: str
        statement_index:
          description: The 1-based index (as in RV(evidence)) of the statement the log points at, or null.
          type: int
        how:
          description: How the log was read, or why it names no statement.
          type: str
failed_migrations:
  description:
    - Names of failed migrations (the ones that block deploy).
    - Named C(failed_migrations), not C(failed), because Ansible treats a true C(failed) key in any result as a
      failed task.
  returned: success
  type: list
  elements: str
failures:
  description:
    - For each failed migration, its name, start time, attempts, parsed database error and C(log_hint) (as in
      RV(migrations[].log_hint) - a hint, never a decision).
  returned: success
  type: list
  elements: dict
pending:
  description: Local migrations with no row at all, in the order deploy applies them.
  returned: success
  type: list
  elements: str
rolled_back:
  description: Migrations whose every row is rolled back; deploy re-runs those that exist locally.
  returned: success
  type: list
  elements: str
will_deploy:
  description: What C(prisma migrate deploy) would apply, in order, once it is not blocked.
  returned: success
  type: list
  elements: str
missing_locally:
  description: Migrations applied in the database whose folder is not in O(migrations_dir).
  returned: success
  type: list
  elements: str
modified:
  description: Applied migrations whose local script no longer matches the stored checksum (edited after apply).
  returned: success
  type: list
  elements: str
missing_scripts:
  description: Migrations deploy would run whose folder has no readable C(migration.sql) (deploy fails with P3015).
  returned: success
  type: list
  elements: str
counts:
  description: Number of migrations in each state, plus C(total), C(will_deploy) and C(rows).
  returned: success
  type: dict
lock:
  description:
    - The session holding Prisma's advisory lock 72707369 in this database, or null. A holder means a deploy or
      resolve is running now, or a stuck session is keeping the lock.
  returned: success
  type: dict
  contains:
    pid:
      description: Backend process id (what C(pg_terminate_backend) takes).
      type: int
    application_name:
      description: The holder's application name.
      type: str
    client_addr:
      description: The holder's client address (null for a Unix socket).
      type: str
    user:
      description: The holder's database user.
      type: str
    session_started_at:
      description: When the holder's session started; Prisma takes the lock right after it connects.
      type: str
    state:
      description: The holder's session state (active, idle, idle in transaction...).
      type: str
lock_waiters:
  description: Sessions waiting for Prisma's lock, with C(waiting_since) (PostgreSQL 14 and later).
  returned: success
  type: list
  elements: dict
baseline:
  description:
    - Only with O(evidence=true), and only when RV(baseline_needed) (P3005 - tables but no history); null otherwise.
      Which migrations the database already has, decided from a replay of the folder's migrations in one pass (on a
      scratch database of the host's server, else on the controller) - the live schema compared with the snapshot
      after each prefix 1..k.
    - C(status) - C(proven) (exactly one prefix leaves the live schema - C(prefix) lists it, C(pending) the rest;
      marking C(prefix) applied is Prisma's baselining), C(ambiguous) (several prefixes do - the migrations between
      change no schema object, so whether they ran cannot be seen), C(no_match) (none does - C(differences) from the
      closest), C(unproven) (no replay could run) or C(error) (the replay failed). C(reason) says it in words;
      C(database) is where the replay ran.
  returned: success
  type: dict
evidence:
  description:
    - Only with O(evidence=true). For each failed migration (by name), what its script did to the live schema.
    - Empty when no migration is failed.
  returned: when evidence is true
  type: dict
  sample:
    20250102000000_add_posts:
      verdict: partial
      recommended_action: stop
      reason: "statements 1 present, 2-3 absent"
      statements:
        - index: 1
          kind: create_table
          object: Post
          excerpt: CREATE TABLE "Post" ("id" SERIAL NOT NULL, ...)
          present: true
          checked: ["table public.Post present"]
  contains:
    verdict:
      description:
        - C(applied) (every checkable effect present), C(not_applied) (none present), C(partial) (some present, some
          absent) or C(unknown) (what cannot be checked decides it, or the two methods disagree).
      type: str
    recommended_action:
      description:
        - C(resolve_applied) for applied, C(resolve_rolled_back) for not_applied, C(stop) for partial and unknown
          (an operator must name the action for this migration).
      type: str
    reason:
      description: One line that says why.
      type: str
    probe_verdict:
      description: The verdict of the statement probes alone.
      type: str
    statements:
      description: Every statement of C(migration.sql), in order.
      type: list
      elements: dict
      contains:
        index:
          description: 1-based position in the file.
          type: int
        kind:
          description: What the statement does (create_table, add_column, create_index, add_enum_value, update...).
          type: str
        object:
          description: The object it touches.
          type: str
        excerpt:
          description: The start of the statement, on one line.
          type: str
        present:
          description:
            - true when its effect is in the live schema, false when it is not, null when that cannot be told
              (data changes, DO blocks, IF NOT EXISTS on an object that may have existed, a value equal before and after).
          type: bool
        checked:
          description: What was looked at in the catalogs, and what was found.
          type: list
          elements: str
    shadow:
      description:
        - The shadow replay, or null when it did not run. C(status) is C(matches_after), C(matches_before),
          C(differs), C(no_schema_change), C(unavailable) or C(error); C(message) says why; the differences lists
          compare the live schema with the replayed states (first 25); C(database) is where it ran
          (C(temporary), C(shadow_url) or C(controller)).
      type: dict
    transaction_control:
      description: The script has its own BEGIN / COMMIT / ROLLBACK.
      type: bool
    concurrently:
      description: The script has CREATE or DROP INDEX CONCURRENTLY, which cannot run in a transaction block.
      type: bool
server:
  description: The database, user, server version and address the module connected to.
  returned: success
  type: dict
connection:
  description:
    - Where the module connected (host, port, database, schema, and the source of the settings), no secret.
    - C(database_size) is C(pg_database_size()) of the connected database in bytes, for example to check that a
      backup fits (added in 1.0.0; null when the user may not read it).
  returned: success
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.prisma_ops.migrate.plugins.module_utils.advisory_lock import lock_status
from ansible_collections.prisma_ops.migrate.plugins.module_utils.connection import (
    COMMON_ARGUMENT_SPEC, COMMON_MUTUALLY_EXCLUSIVE, COMMON_REQUIRED_ONE_OF, connect, resolve_connection, scrub,
    server_info,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.evidence import collect_baseline, collect_evidence
from ansible_collections.prisma_ops.migrate.plugins.module_utils.failure_log import log_hint
from ansible_collections.prisma_ops.migrate.plugins.module_utils.history import build_report, read_history
from ansible_collections.prisma_ops.migrate.plugins.module_utils.migrations_dir import read_migrations_dir
from ansible_collections.prisma_ops.migrate.plugins.module_utils.module_run import run_module


def _database_size(conn):
    """pg_database_size() in bytes, or None: it needs CONNECT on the database (or pg_read_all_stats)."""
    with conn.cursor() as cur:
        try:
            cur.execute("SELECT pg_database_size(current_database())")
            return cur.fetchone()[0]
        except Exception:  # pylint: disable=broad-except  # an optional figure must not fail the read
            conn.rollback()
            return None


def _log_hints(history: dict, local, result: dict, secrets) -> None:
    """log_hint on each failed migration: reported for the operator, read by nothing that decides."""
    logs = {row.migration_name: row.logs for row in history["rows"] if row.is_failed}  # the last failed row wins
    by_name = {}
    for entry in result["migrations"]:
        if entry["state"] != "failed":
            entry["log_hint"] = None
            continue
        migration = local.get(entry["name"]) if local else None
        hint = log_hint(logs.get(entry["name"]), migration.script if migration else None)
        for key in ("message", "how"):
            if hint[key]:
                hint[key] = scrub(hint[key], secrets)
        entry["log_hint"] = by_name[entry["name"]] = hint
    for failure in result["failures"]:
        failure["log_hint"] = by_name.get(failure["name"])


def run(module: AnsibleModule) -> dict:
    spec = resolve_connection(module.params)
    module.no_log_values.update(spec.secrets)
    for name in spec.ignored_params:
        module.warn("URL parameter %r is neither a Prisma nor a libpq parameter; it was ignored" % name)
    local = None
    if module.params["migrations_dir"]:
        local = read_migrations_dir(module.params["migrations_dir"])
    conn = connect(spec, application_name="prisma_ops.migrate/prisma_migration_info")
    try:
        with conn.cursor() as cur:
            cur.execute("SET default_transaction_read_only = on")
        history = read_history(conn, spec.schema)
        holder, waiters = lock_status(conn)
        server = server_info(conn)
        database_size = _database_size(conn)
        result = build_report(history, local)
        if result["provider_finding"]:
            module.warn(result["provider_finding"]["message"])  # the finding's own words, built in one place
        _log_hints(history, local, result, spec.secrets)
        if module.params["evidence"]:
            # Only the failed migrations, and only reads here: the replay writes in its own scratch database.
            replay_input = {} if module.params["replay_input"] else None
            result["evidence"] = collect_evidence(conn, spec, local, result, shadow_url=module.params["shadow_url"],
                                                  replay_input=replay_input)
            result["baseline"] = collect_baseline(conn, spec, local, result, module.params["shadow_url"], replay_input)
            if replay_input:
                known = set(module.params["replay_known_scripts"])
                replay_input["texts"] = {d: t for d, t in replay_input["texts"].items() if d not in known}
                result["replay_input"] = replay_input
    finally:
        conn.close()
    if not history["schema_exists"]:
        module.warn("schema %r does not exist in database %s" % (spec.schema, server["database"]))
    result.update({
        "changed": False,
        "lock": holder,
        "lock_waiters": waiters,
        "server": server,
        "connection": {"host": spec.host, "port": spec.port, "database": spec.dbname, "user": spec.user,
                       "schema": spec.schema, "source": spec.source, "database_size": database_size},
    })
    for entry in result["migrations"]:
        if entry["logs"]:
            entry["logs"] = scrub(entry["logs"], spec.secrets)
    return result


def main() -> None:
    argument_spec = dict(COMMON_ARGUMENT_SPEC)
    argument_spec.update(migrations_dir=dict(type="path"), evidence=dict(type="bool", default=False),
                         shadow_url=dict(type="str", no_log=True), controller_replay=dict(type="bool", default=True),
                         replay_input=dict(type="bool", default=False),
                         replay_known_scripts=dict(type="list", elements="str", default=[], no_log=False))
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=COMMON_MUTUALLY_EXCLUSIVE,
        required_one_of=COMMON_REQUIRED_ONE_OF,
        # Evidence compares each failed migration's script with the database: it needs the folder.
        required_if=[("evidence", True, ("migrations_dir",))],
        supports_check_mode=True,
    )
    if module.params["shadow_url"] and not module.params["evidence"]:
        module.warn("shadow_url is only used with evidence: true; it was ignored")
    run_module(module, run)


if __name__ == "__main__":
    main()
