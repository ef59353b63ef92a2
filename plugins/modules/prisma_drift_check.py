#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: prisma_drift_check
short_description: Check one host for Prisma migration drift, schema drift and stuck operations, read-only
version_added: 1.0.0
description:
  - History drift, from C(_prisma_migrations) and the migrations folder, as C(prisma_migration_info) sees it - failed
    migrations (deploy blocked, P3009), pending ones, ones edited after apply, applied ones missing on disk, rolled-back
    ones that deploy will re-run, migrations without C(migration.sql), a needed baseline (P3005), and a lockfile that
    names another provider than C(postgresql) (P3019, a C(provider_mismatch) finding).
  - Schema drift - the live schema compared with a shadow replay of the migrations folder in a scratch database
    (O(shadow_url), or a temporary database when the user has CREATEDB), listing each extra, missing or changed table,
    column (type, nullability, default), index, constraint, enum label, view, sequence, function, trigger and extension.
    When no scratch database is reachable the result says C(schema drift not checked) and why, never a silent pass.
  - Operations - whether Prisma's advisory lock is held and for how long, and the age of the newest verified
    C(pg_backup) backup in O(backup_dir).
  - Read-only. The inspected database is read in a read-only session, and Prisma's advisory lock 72707369 is never
    taken, so the check neither waits for nor blocks a running C(prisma migrate deploy). The replay writes only in the
    temporary database it creates and always drops, or inside one always rolled-back transaction in the O(shadow_url)
    database.
  - The module never fails because drift was found; it returns RV(fail) for O(fail_on) so a play can fail those hosts
    after the reports are written (the C(drift_check) role does).
author:
  - prisma_ops.migrate maintainers (@prisma-ops)
extends_documentation_fragment:
  - prisma_ops.migrate.connection
  - prisma_ops.migrate.controller_replay
attributes:
  check_mode:
    support: full
    description: The module only reads the inspected database, so check mode runs it in full.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
options:
  migrations_dir:
    description:
      - Path, on the managed host, of the Prisma migrations folder (the one holding C(migration_lock.toml)).
      - Without it, the folder the project's Prisma CLI uses, found in O(project_dir) as
        M(prisma_ops.migrate.prisma_project_info) finds it (the config's C(migrations.path), else C(migrations)
        beside the schema).
    type: path
  project_dir:
    description:
      - The app folder on the managed host, where the migrations folder is looked for when O(migrations_dir) is not
        given. One of O(migrations_dir) and O(project_dir) is required.
    type: path
  checks:
    description: Which checks to run.
    type: list
    elements: str
    choices: [history, schema, operations]
    default: [history, schema, operations]
  replay:
    description:
      - What the shadow replay holds. C(all) replays the whole migrations folder, what the schema should be once every
        migration is deployed (pending migrations then show as missing objects too). C(applied) replays only the
        migrations the database records as applied, what the schema should be now.
    type: str
    choices: [all, applied]
    default: all
  shadow_url:
    description:
      - A PostgreSQL URL of an empty scratch database for the replay. It must not be the inspected database and must
        hold nothing at all (one that does is refused and left as it is). The replay runs in one transaction there that
        is always rolled back, so nothing is ever dropped from it; hosts that share it replay one after the other.
      - Without it, the replay uses a temporary database when the user has CREATEDB, and otherwise runs on the
        controller (O(controller_replay)); when none of those can run, the schema check says why it did not run.
    type: str
  replay_input:
    description:
      - Set by the action plugin (see O(controller_replay)); leave unset. Returns what a replay on the controller needs
        when the host could not replay.
    type: bool
    default: false
  lock_max_age:
    description:
      - Report Prisma's lock as a C(lock) finding when it has been held this long (a duration such as C(10m), or
        seconds). C(0) reports any holder. A deploy normally holds it for seconds to minutes.
    type: str
    default: 15m
  backup_dir:
    description:
      - Directory, on the managed host, of C(pg_backup) backups. The newest one with a verified manifest for this
        database and O(backup_prefix) is reported with its age. Without it, backups are not looked at.
    type: path
  backup_prefix:
    description: The O(backup_prefix) that C(pg_backup) was given (its C(prefix)).
    type: str
    default: prisma
  backup_max_age:
    description: A C(backup) finding when the newest verified backup is older than this, or when there is none.
    type: str
    default: 26h
  fail_on:
    description:
      - Kinds of finding that set RV(fail). Kinds - C(history_relation) (C(_prisma_migrations) is a view or another
        relation that is not a plain table - deploy cannot use it), C(provider_mismatch) (C(migration_lock.toml)
        names another provider than C(postgresql), so deploy refuses with P3019; the detail is the message of
        M(prisma_ops.migrate.prisma_migration_info)'s C(provider_finding)), C(failed), C(pending), C(modified),
        C(missing_locally), C(rolled_back), C(baseline_needed), C(missing_scripts), C(schema), C(schema_not_checked),
        C(lock), C(backup), C(error), C(unreachable).
    type: list
    elements: str
    default: []
seealso:
  - module: prisma_ops.migrate.prisma_migration_info
  - module: prisma_ops.migrate.prisma_drift_report
"""

EXAMPLES = r"""
- name: Check the app's database for drift, with the URL from the app's own .env on the host
  prisma_ops.migrate.prisma_drift_check:
    env_file: /opt/schooliat/repo/Backend/.env
    migrations_dir: /opt/schooliat/repo/Backend/src/prisma/db/migrations
    backup_dir: /opt/schooliat/shared/backups
    fail_on: [failed, modified, schema]
  register: drift

- name: Say it in one line
  ansible.builtin.debug:
    msg: "{{ drift.summary }}"

- name: Replay in a dedicated empty scratch database (the app user has no CREATEDB)
  prisma_ops.migrate.prisma_drift_check:
    env_file: /opt/schooliat/repo/Backend/.env
    migrations_dir: /opt/schooliat/repo/Backend/src/prisma/db/migrations
    shadow_url: "{{ vault_shadow_url }}"
    checks: [schema]
  register: schema_drift
"""

RETURN = r"""
migrations_dir:
  description: The migrations folder that was read (given, or found in O(project_dir)).
  returned: success
  type: str
summary:
  description: One line, for example C(no drift) or C(failed 1; 2 schema differences).
  returned: success
  type: str
  sample: "failed: 1; schema drift not checked (no scratch database: ...)"
findings:
  description: Every finding of every check, in report order.
  returned: success
  type: list
  elements: dict
  contains:
    kind:
      description: One of the kinds listed under O(fail_on).
      type: str
    object:
      description: The migration, schema object, lock holder or backup concerned (null when none).
      type: str
    detail:
      description: One line that says what is wrong.
      type: str
    object_type:
      description: For schema findings, table, column, index, constraint, enum_label, view, sequence, function...
      type: str
    change:
      description: For schema findings, C(extra) (in the live schema only), C(missing) (in the migrations only) or
        C(changed).
      type: str
kinds:
  description: The kinds found, in report order.
  returned: success
  type: list
  elements: str
failing_kinds:
  description: The kinds found that O(fail_on) names.
  returned: success
  type: list
  elements: str
fail:
  description: True when RV(failing_kinds) is not empty.
  returned: success
  type: bool
checks:
  description:
    - One entry per check run (C(history), C(schema), C(operations)), each with C(status) (C(ok), C(drift),
      C(not_checked)) and its C(findings).
    - C(history) also has C(provider_finding), as M(prisma_ops.migrate.prisma_migration_info) returns it.
    - C(schema) also has C(checked), C(reason) (why it was not checked), C(database) (C(temporary),
      C(shadow_url) or C(controller)), C(scope), C(replayed) (migrations replayed), C(count) and C(truncated).
    - C(operations) has C(lock) (C(held), C(holder), C(age_seconds), C(waiters)) and C(backup) (C(checked), C(path),
      C(finished_at), C(age_seconds)).
  returned: success
  type: dict
checked_at:
  description: When the check ran (UTC, ISO 8601).
  returned: success
  type: str
connection:
  description:
    - Where the module connected (host, port, database, user, schema, and the source of the settings), no secret, and
      the server's C(server_version_num).
  returned: success
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.prisma_ops.migrate.plugins.module_utils.backup import parse_duration
from ansible_collections.prisma_ops.migrate.plugins.module_utils.connection import (
    COMMON_ARGUMENT_SPEC, COMMON_MUTUALLY_EXCLUSIVE, COMMON_REQUIRED_ONE_OF, connect, resolve_connection, scrub,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.drift import CHECKS, run_check, validate_kinds
from ansible_collections.prisma_ops.migrate.plugins.module_utils.migrations_dir import read_migrations_dir
from ansible_collections.prisma_ops.migrate.plugins.module_utils.module_run import run_module
from ansible_collections.prisma_ops.migrate.plugins.module_utils.prisma_project import discover


def run(module: AnsibleModule) -> dict:
    params = module.params
    fail_on = validate_kinds(params["fail_on"])
    lock_max_age = parse_duration(params["lock_max_age"], "lock_max_age")
    backup_max_age = parse_duration(params["backup_max_age"], "backup_max_age")
    spec = resolve_connection(params)
    module.no_log_values.update(spec.secrets)
    for name in spec.ignored_params:
        module.warn("URL parameter %r is neither a Prisma nor a libpq parameter; it was ignored" % name)
    migrations_dir = params["migrations_dir"] or discover(params["project_dir"]).migrations_dir
    local = read_migrations_dir(migrations_dir)
    conn = connect(spec, application_name="prisma_ops.migrate/prisma_drift_check")
    try:
        with conn.cursor() as cur:
            cur.execute("SET default_transaction_read_only = on")
        replay_input = {} if params["replay_input"] else None
        result = run_check(conn, spec, local, checks=params["checks"], scope=params["replay"],
                           shadow_url=params["shadow_url"], lock_max_age=lock_max_age, backup_dir=params["backup_dir"],
                           backup_prefix=params["backup_prefix"], backup_max_age=backup_max_age, fail_on=fail_on,
                           replay_input=replay_input)
        server_version_num = conn.server_version
    finally:
        conn.close()
    secrets = list(spec.secrets)
    for finding in result["findings"]:
        finding["detail"] = scrub(finding["detail"], secrets)
    schema = result["checks"].get("schema")
    if schema and schema.get("reason"):
        schema["reason"] = scrub(schema["reason"], secrets)
    result.update(changed=False, connection={"host": spec.host, "port": spec.port, "database": spec.dbname,
                                             "user": spec.user, "schema": spec.schema, "source": spec.source,
                                             "server_version_num": server_version_num},
                  migrations_dir=migrations_dir)
    if replay_input:
        known = set(params["replay_known_scripts"])
        replay_input["texts"] = {d: t for d, t in replay_input["texts"].items() if d not in known}
        result["replay_input"] = replay_input
    return result


def main() -> None:
    argument_spec = dict(COMMON_ARGUMENT_SPEC)
    argument_spec.update(
        migrations_dir=dict(type="path"),
        project_dir=dict(type="path"),
        checks=dict(type="list", elements="str", choices=list(CHECKS), default=list(CHECKS)),
        replay=dict(type="str", choices=["all", "applied"], default="all"),
        shadow_url=dict(type="str", no_log=True),
        lock_max_age=dict(type="str", default="15m"),
        backup_dir=dict(type="path"),
        backup_prefix=dict(type="str", default="prisma"),
        backup_max_age=dict(type="str", default="26h"),
        fail_on=dict(type="list", elements="str", default=[]),
        controller_replay=dict(type="bool", default=True),
        replay_input=dict(type="bool", default=False),
        replay_known_scripts=dict(type="list", elements="str", default=[], no_log=False),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=COMMON_MUTUALLY_EXCLUSIVE,
        required_one_of=COMMON_REQUIRED_ONE_OF + [("migrations_dir", "project_dir")],
        supports_check_mode=True,
    )
    run_module(module, run)


if __name__ == "__main__":
    main()
