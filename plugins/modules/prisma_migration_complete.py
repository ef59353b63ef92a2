#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: prisma_migration_complete
short_description: Finish a partially applied Prisma migration - run only its missing statements, then resolve it applied
version_added: 1.0.0
description:
  - For ONE named failed migration (its row has C(finished_at) and C(rolled_back_at) NULL, so deploy fails with P3009)
    whose C(migration.sql) ran only in part, runs the statements whose effect is missing and then writes exactly the
    rows C(prisma migrate resolve --applied) writes, all in one transaction holding Prisma's advisory lock 72707369.
  - Under the lock, every statement is judged again against the live catalogs with the same statement probes as
    M(prisma_ops.migrate.prisma_migration_info)'s evidence. Each must be present (skipped) or absent and runnable in a
    transaction (run, in file order). A statement whose effect cannot be checked (data changes, DO blocks, statements
    with no probe) or is half present refuses the whole migration, naming the statement; nothing is done.
  - After running, the statements are judged again in the same transaction; any effect still missing rolls
    everything back. A statement that fails (for example on rows that conflict with a new constraint) rolls back
    everything too - the schema and C(_prisma_migrations) are then as before.
  - A missing statement that PostgreSQL cannot run inside a transaction block (C(CREATE INDEX CONCURRENTLY),
    C(DROP INDEX CONCURRENTLY), C(REINDEX CONCURRENTLY), C(VACUUM), C(ALTER TYPE ... ADD VALUE) before PostgreSQL 12,
    C(CREATE DATABASE), ...) is refused by name - run outside the transaction, it would stay behind if anything after
    it failed, which is the half-applied state this module exists to end. Run that statement by hand, then run the
    module again - it is then present and skipped.
  - Idempotent. A migration that is already applied is unchanged; nothing is written and the lock is not taken.
  - Transaction control in the script (C(BEGIN), C(COMMIT)) is not run - the completion is its own transaction.
    C(SET) and C(VALIDATE CONSTRAINT) statements, and statements that are conditional (C(IF NOT EXISTS),
    C(IF EXISTS), C(OR REPLACE)) and cannot be told apart, are run again - doing so is harmless and gives the state
    the script means.
author:
  - prisma_ops.migrate maintainers (@prisma-ops)
extends_documentation_fragment:
  - prisma_ops.migrate.connection
  - prisma_ops.migrate.controller_replay
attributes:
  check_mode:
    support: full
    description: Reads the rows and the catalogs and returns the statements it would run and the rows it would write;
      takes no lock and changes nothing.
  diff_mode:
    support: full
    description: Returns the migration's C(_prisma_migrations) rows before and after.
options:
  name:
    description:
      - The failed migration, as its folder name, for example C(20250102000000_add_posts). Exactly one; there is no
        blanket form.
    type: str
    required: true
  migrations_dir:
    description:
      - Path, on the managed host, of the Prisma migrations folder. The statements and the checksum come from
        C(NAME/migration.sql) there.
    type: path
    required: true
  lock_timeout:
    description:
      - Seconds to wait for Prisma's advisory lock, and inside the transaction for any table or row lock the statements
        need. On timeout the task fails naming the session that holds the lock; nothing is changed and no backend is
        left queued on the lock.
    type: int
    default: 10
  proof:
    description:
      - Whether the completion must be proven. The proof is a replay of migrations 1..N in a scratch database (the
        O(shadow_url) one, a temporary one when the user has CREATEDB, or on the controller - O(controller_replay)),
        after running the missing statements, in the same transaction, the schema is compared with the replay's, and
        the completion commits only when they are identical; otherwise everything is rolled back and the differences
        are reported (code C(not_identical)). RV(proof) says whether it was proven, where, and why not.
      - C(auto) proves when a replay can run and completes with the statement probes alone when none can;
        C(required) refuses (nothing done) without a proof; C(skip) never replays
        (not C(off), which YAML reads as false when unquoted).
    type: str
    choices: [auto, required, skip]
    default: auto
  shadow_url:
    description:
      - A PostgreSQL URL of an empty scratch database for the proof's replay, as for
        M(prisma_ops.migrate.prisma_migration_info) (one transaction there, always rolled back).
    type: str
  replay_input:
    description: Set by the action plugin; leave unset. Return what a replay on the controller needs, and do nothing.
    type: bool
    default: false
  replay_after:
    description: Set by the action plugin; leave unset. The schema snapshot of the controller's replay of 1..N.
    type: dict
notes:
  - Requires pglast (PostgreSQL's parser) on the managed host's Python, like evidence does.
  - Take a backup first (M(prisma_ops.migrate.pg_backup)); the recover role does so before calling this module.
  - The rows are written by the same code as M(prisma_ops.migrate.prisma_migrate_resolve) (method native), so they are
    exactly what C(prisma migrate resolve --applied) writes - the failed row gets C(rolled_back_at), a new row has the
    local script's checksum, C(logs) empty, C(started_at) = C(finished_at) and C(applied_steps_count) 0.
  - The statements run with C(search_path) set to the migration table's schema, as Prisma runs them.
seealso:
  - module: prisma_ops.migrate.prisma_migration_info
  - module: prisma_ops.migrate.prisma_migrate_resolve
"""

EXAMPLES = r"""
- name: What would finishing the half-applied migration run? (nothing changes)
  prisma_ops.migrate.prisma_migration_complete:
    env_file: /opt/schooliat/repo/Backend/.env
    migrations_dir: /opt/schooliat/repo/Backend/src/prisma/db/migrations
    name: 20240115000000_guardians
  check_mode: true
  diff: true
  register: preview

- name: Show the statements it would run
  ansible.builtin.debug:
    msg: "{{ preview.ran | map(attribute='excerpt') | list }}"

- name: Run the missing statements and resolve it applied, in one transaction under Prisma's lock
  prisma_ops.migrate.prisma_migration_complete:
    env_file: /opt/schooliat/repo/Backend/.env
    migrations_dir: /opt/schooliat/repo/Backend/src/prisma/db/migrations
    name: 20240115000000_guardians
    lock_timeout: 60
  register: completed
"""

RETURN = r"""
changed:
  description: Whether statements ran and rows were written (or, in check mode, would be).
  returned: always
  type: bool
ran:
  description:
    - The statements run (in check mode, that would run), in file order, each with C(index) (1-based, in
      C(migration.sql)), C(kind), C(object), C(excerpt), C(action) (C(run)), C(why) and C(checked) (what the probes
      looked at and found).
  returned: always
  type: list
  elements: dict
skipped_present:
  description: The statements skipped because their effect is already there, same shape as RV(ran).
  returned: always
  type: list
  elements: dict
skipped_control:
  description: Transaction control statements of the script that were not run (the completion is one transaction).
  returned: always
  type: list
  elements: dict
resolved:
  description: The migration name when its rows were written (or would be), else empty.
  returned: always
  type: list
  elements: str
  sample: [20240115000000_guardians]
statements:
  description: The C(_prisma_migrations) statements executed (in check mode, that would be; the new id then reads
    C(<new uuid v4>)). No secret is ever in them.
  returned: success
  type: list
  elements: str
rows:
  description: The migration's C(_prisma_migrations) rows after the run (predicted in check mode; timestamps then read
    C(<now>)).
  returned: success
  type: list
  elements: dict
lock_waited:
  description: Seconds spent waiting for Prisma's lock (0 in check mode and when nothing was to do).
  returned: success
  type: float
lock:
  description: In check mode, the session holding Prisma's lock now, or null; a real run would wait for it.
  returned: check mode
  type: dict
proof:
  description:
    - C(checked) (the schema was compared with a clean apply of 1..N before the commit; in check mode, whether it
      would be), C(database) (where the replay ran - C(temporary), C(shadow_url), C(controller) - or null) and
      C(reason) (why there is no proof).
  returned: success
  type: dict
code:
  description:
    - On failure, a short code - C(cannot_tell) (a statement that cannot be checked or is half present),
      C(not_transactional) (a missing statement that cannot run in a transaction), C(statement_failed) (rolled
      back), C(not_present_after), C(not_identical) (the proof found differences; rolled back), C(no_proof)
      (O(proof=required) and no replay could run), C(not_failed), C(lock_timeout), C(row_lock_timeout),
      C(transaction_failed) (rolled back; the message says whether to fix something first), C(commit_unknown)
      (COMMIT got no answer - read the rows with prisma_migration_info before running again), C(read_back),
      C(history_not_a_table), C(parse_error), or Prisma's code of a refusal (P3008, P3017, P3019).
  returned: failure
  type: str
sqlstate:
  description: On C(statement_failed), C(transaction_failed) and C(commit_unknown), the database's SQLSTATE; the
    message carries its advice.
  returned: failure
  type: str
statement:
  description: On C(cannot_tell), C(not_transactional) and C(statement_failed), the statement concerned
    (C(index), C(kind), C(object), C(excerpt)).
  returned: failure
  type: dict
lock_holder:
  description: On a lock timeout, the session that holds Prisma's lock (pid, application_name, user, since when).
  returned: failure
  type: dict
diff:
  description: In diff mode, the migration's rows before and after.
  returned: diff mode
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.prisma_ops.migrate.plugins.module_utils.advisory_lock import lock_status
from ansible_collections.prisma_ops.migrate.plugins.module_utils.complete import execute, preview
from ansible_collections.prisma_ops.migrate.plugins.module_utils.connection import (
    COMMON_ARGUMENT_SPEC, COMMON_MUTUALLY_EXCLUSIVE, COMMON_REQUIRED_ONE_OF, connect, resolve_connection,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError
from ansible_collections.prisma_ops.migrate.plugins.module_utils.evidence import prior_scripts, replay_input_for
from ansible_collections.prisma_ops.migrate.plugins.module_utils.migrations_dir import read_migrations_dir
from ansible_collections.prisma_ops.migrate.plugins.module_utils.resolve import row_dict, simulate_plans, validate_name
from ansible_collections.prisma_ops.migrate.plugins.module_utils.sql_statements import require_pglast
from ansible_collections.prisma_ops.migrate.plugins.module_utils.module_run import run_module

APPLICATION_NAME = "prisma_ops.migrate/prisma_migration_complete"


def _steps(plan, action: str) -> list:
    return [s.as_dict() for s in plan.steps if s.action == action]


def find_proof(module: AnsibleModule, conn, spec, local, name: str, script: str) -> tuple:
    """(expected "after" snapshot or None, the proof's report, replay_input for the controller or None)."""
    from ansible_collections.prisma_ops.migrate.plugins.module_utils.replay import shadow_replay
    params = module.params
    if params["proof"] == "skip":
        return None, {"checked": False, "database": None, "reason": "proof: skip"}, None
    if params["replay_after"] is not None:
        return params["replay_after"], {"checked": True, "database": "controller", "reason": None}, None
    prior = prior_scripts(local, name)
    if prior is None:
        return None, {"checked": False, "database": None,
                      "reason": "a migration before %s has no readable migration.sql, so 1..N cannot be replayed" % name}, None
    replay = shadow_replay(conn, spec, prior, script, params["shadow_url"])
    if replay.after is not None:
        return replay.after, {"checked": True, "database": replay.database, "reason": None}, None
    if replay.status == "unavailable" and params["replay_input"]:
        material = replay_input_for(prior, name, script)
        known = set(params["replay_known_scripts"])
        material["texts"] = {d: t for d, t in material["texts"].items() if d not in known}
        return None, {"checked": False, "database": None, "reason": replay.message}, material
    return None, {"checked": False, "database": replay.database, "reason": replay.message}, None


def run(module: AnsibleModule) -> dict:
    params = module.params
    name = validate_name(params["name"])  # before connecting: a bad name never reaches the database
    if params["lock_timeout"] < 0:
        raise PrismaOpsError("lock_timeout must be 0 or more seconds")
    require_pglast()
    spec = resolve_connection(params)
    module.no_log_values.update(spec.secrets)
    local = read_migrations_dir(params["migrations_dir"])
    migration = local.get(name)
    if migration is None or migration.script is None:
        raise PrismaOpsError("migration %s has no readable migration.sql in %s (%s): the statements and the checksum "
                             "come from that file; check the name and migrations_dir"
                             % (name, local.path, migration.read_error if migration else "no such folder"),
                             code="P3017")
    conn = connect(spec, application_name=APPLICATION_NAME)
    try:
        first = preview(conn, spec.schema, name, migration.script, local)
        plan, before_rows = first["plan"], first["rows_before"]
        result = {"lock_waited": 0.0, "statements": first["row_statements"]}
        expected, proof = None, {"checked": False, "database": None, "reason": "nothing to complete"}
        if plan.outcome == "changed":
            expected, proof, material = find_proof(module, conn, spec, local, name, migration.script)
            if material is not None:  # the action plugin replays on the controller, then runs this module again
                return {"changed": False, "replay_input": material, "proof": proof, "resolved": [],
                        "msg": "the proof needs a replay on the controller",
                        "connection": {"schema": spec.schema, "server_version_num": conn.server_version}}
            if expected is None and params["proof"] == "required":
                raise PrismaOpsError("proof: required, and no replay of migrations 1..N could run (%s): nothing was "
                                     "done. Give shadow_url, CREATEDB to the user, or PostgreSQL server binaries, "
                                     "psycopg2 and pglast on the controller" % proof["reason"], code="no_proof")
        result["proof"] = proof
        if module.check_mode or plan.outcome == "unchanged":
            # A preview, or nothing to do: no lock taken (a second run never waits behind a deploy).
            after_rows = simulate_plans(before_rows, [plan.resolution]) if plan.outcome == "changed" else before_rows
            ran = [s.as_dict() for s in plan.to_run]
            if module.check_mode:
                result["lock"] = lock_status(conn)[0]
        else:
            done = execute(conn, spec.schema, name, migration.script, local, params["lock_timeout"], spec.secrets,
                           expected_after=expected)
            plan, before_rows, after_rows = done["plan"], done["before"], done["after"]
            ran = [s.as_dict() for s in done["ran"]]
            result.update(statements=done["row_statements"], lock_waited=round(done["lock_waited"], 3))
    finally:
        conn.close()
    changed = plan.outcome == "changed"
    mine_before = [row_dict(r) for r in before_rows if r.migration_name == name]
    mine_after = [row_dict(r) for r in after_rows if r.migration_name == name]
    result.update(changed=changed, ran=ran, skipped_present=_steps(plan, "skip_present"),
                  skipped_control=_steps(plan, "skip_control"), resolved=[name] if changed else [], rows=mine_after)
    if module.check_mode:
        result["msg"] = "would %s" % plan.reason if changed else "nothing to do: %s" % plan.reason
    else:
        result["msg"] = ("ran %d missing statement%s of %s and resolved it applied" % (
            len(ran), "" if len(ran) == 1 else "s", name)) if changed else "nothing to do: %s" % plan.reason
    if module._diff:
        header = "_prisma_migrations rows of %s" % name
        result["diff"] = {"before": mine_before, "after": mine_after, "before_header": header, "after_header": header}
    return result


def main() -> None:
    argument_spec = dict(COMMON_ARGUMENT_SPEC)
    argument_spec.update(
        name=dict(type="str", required=True),
        migrations_dir=dict(type="path", required=True),
        lock_timeout=dict(type="int", default=10),
        proof=dict(type="str", choices=["auto", "required", "skip"], default="auto"),
        shadow_url=dict(type="str", no_log=True),
        controller_replay=dict(type="bool", default=True),
        replay_input=dict(type="bool", default=False),
        replay_known_scripts=dict(type="list", elements="str", default=[], no_log=False),
        replay_after=dict(type="dict"),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=COMMON_MUTUALLY_EXCLUSIVE,
        required_one_of=COMMON_REQUIRED_ONE_OF,
        supports_check_mode=True,
    )
    run_module(module, run, {"resolved": []}, not_done="nothing was changed")


if __name__ == "__main__":
    main()
