#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: prisma_migrate_resolve
short_description: Mark Prisma migrations applied or rolled back, exactly as prisma migrate resolve does, idempotently
version_added: 1.0.0
description:
  - Writes the same rows to C(_prisma_migrations) as C(prisma migrate resolve --applied) or C(--rolled-back), for one
    migration or a list, under Prisma's advisory lock 72707369, so it never interleaves with a running
    C(prisma migrate deploy).
  - Idempotent. A migration already in the requested state is reported unchanged and nothing is written, where Prisma
    fails with P3008 the second time.
  - Refuses, as Prisma does and with nothing written, C(rolled_back) for a migration that was never recorded (P3011)
    or is not failed (P3012), C(rolled_back) when there is no C(_prisma_migrations) table, and C(applied) for a
    name with no local C(migration.sql) (P3017). The refusal names each migration and the reason.
  - With a list, every name is planned first (each on the rows the earlier ones leave); if any is refused, nothing is
    written for any of them. With I(method=native) all names are written in one transaction.
  - Never deletes a row, never changes rows of other migrations, never runs migration SQL.
  - "Two deliberate differences from Prisma: C(applied) on a migration that has an applied row and no failed row is
    unchanged (Prisma: P3008), while a row that is finished but rolled back, or a failed row beside an applied one
    (hand-edited history), is still refused with P3008. C(rolled_back) on a migration that is applied (for example
    resolved applied after a failure) is refused with P3012, where Prisma exits 0 and writes nothing."
author:
  - prisma_ops.migrate maintainers (@prisma-ops)
extends_documentation_fragment:
  - prisma_ops.migrate.connection
attributes:
  check_mode:
    support: full
    description: Reads the rows, plans, and returns the statements or commands that would run; writes nothing.
  diff_mode:
    support: full
    description: Returns the rows of the named migrations before and after.
options:
  name:
    description:
      - The migration, as its folder name (for example C(20250102000000_add_posts)), or a list of them, resolved in
        the order given.
      - Names with quotes, semicolons, slashes, backslashes, C(..), control characters or a leading C(-), empty
        names and names over 255 characters are refused before connecting.
    type: list
    elements: str
    required: true
  state:
    description:
      - C(applied) marks every failed row of the migration rolled back and records a new applied row whose checksum is
        the sha256 of the local C(migration.sql) (C(logs) empty, C(started_at) = C(finished_at), C(applied_steps_count)
        0), creating C(_prisma_migrations) with Prisma's DDL if it is missing (baselining). No SQL of the migration runs.
      - C(rolled_back) sets C(rolled_back_at) on the failed rows, so the next C(prisma migrate deploy) runs the
        migration again.
    type: str
    required: true
    choices: [applied, rolled_back]
  migrations_dir:
    description:
      - Path, on the managed host, of the Prisma migrations folder.
      - Defaults to O(project_dir)C(/prisma/migrations) when that exists.
      - Required for O(state=applied) with the native method, because the checksum comes from the local
        C(migration.sql) (P3017 when it is missing). With the cli method, when neither is available the CLI itself
        checks the folder it is configured with.
    type: path
  method:
    description:
      - C(native) writes the rows itself, in one transaction holding Prisma's lock.
      - C(cli) runs the project's own Prisma CLI, C(prisma migrate resolve), once per migration that needs a change,
        with the database URL in its environment (never on the CLI's command line). A Prisma 7 project needs no
        C(.env) for it - the 7.x CLI reads none, and the C(env) call of its config finds the module's C(DATABASE_URL)
        (a config that imports C(dotenv/config) too, the environment winning over the file).
      - The CLI itself then passes the URL, password included, on the command line of its schema engine child, where
        any user of the host can read it in the process table while the engine runs - Prisma 7 for every engine run
        (twice per C(migrate resolve) with 7.10.1, the connection check and the engine), Prisma 6 for its connection
        check. This is Prisma's own behaviour; the module cannot prevent it and warns each time it runs the CLI.
        C(native) has no such exposure.
      - C(auto) uses C(cli) when O(prisma_command) is given or O(project_dir)C(/node_modules/.bin/prisma) exists, and
        C(native) otherwise.
      - The default is C(native), which writes the same rows as the CLI (compared against Prisma 6.19.3 and 7.10.1),
        puts no secret on any command line, needs neither Node nor the project's C(node_modules) on the host, and
        writes a list of names in one transaction (the cli method runs one CLI call per name).
    type: str
    choices: [auto, native, cli]
    default: native
  project_dir:
    description:
      - The app folder the Prisma CLI runs in (holding C(node_modules), C(package.json), the schema or
        C(prisma.config.ts)), for example C(/opt/schooliat/repo/Backend). Required by the cli method.
    type: path
  prisma_command:
    description:
      - The command that runs the Prisma CLI, as an argument list, for example C([npx, prisma]) or
        C([npm, run, prisma, --]). C(migrate resolve --applied NAME) is appended.
      - Defaults to O(project_dir)C(/node_modules/.bin/prisma). For a Prisma 7 project kept beside Prisma 8 (its
        config a C(prisma7.config.*)), give O(project_dir)C(/node_modules/.bin/prisma7).
    type: list
    elements: str
  environment:
    description:
      - Extra environment variables for the Prisma CLI (cli method), for example C(PRISMA_ENGINES_CHECKSUM_IGNORE_MISSING)
        or C(NODE_OPTIONS). The module sets C(DATABASE_URL) itself (and O(env_var) when it names another variable),
        plus C(CHECKPOINT_DISABLE=1); C(DATABASE_URL) is refused here.
      - Values of variables whose name contains PASSW, SECRET, TOKEN, KEY, URL, CREDENTIAL or AUTH are masked in
        the result; other values are shown in the task's invocation, so keep secrets out of them.
    type: dict
  lock_timeout:
    description:
      - Seconds to wait for Prisma's advisory lock (and, inside the transaction, for any row lock on
        C(_prisma_migrations)). On timeout the task fails naming the session that holds the lock (pid, application,
        user, since when) and nothing is written; no backend is left queued on the lock.
      - With the cli method, the module waits this long for the lock to be free before starting the CLI, which then
        waits up to Prisma's own 10 s.
    type: int
    default: 10
notes:
  - The native method takes the lock with C(pg_try_advisory_lock) in a loop, reads the rows again under it, writes,
    commits, and unlocks; a session lock survives a ROLLBACK, so it is unlocked explicitly and the connection closed.
  - When a first read shows nothing to write (everything unchanged, or a refusal), the lock is not taken at all, so a
    second run never waits behind a deploy.
  - Timestamps come from the database server (C(statement_timestamp())), Prisma's from the client clock.
seealso:
  - module: prisma_ops.migrate.prisma_migration_info
  - name: prisma migrate resolve
    description: Prisma's command this module reproduces.
    link: https://www.prisma.io/docs/orm/reference/prisma-cli-reference#migrate-resolve
"""

EXAMPLES = r"""
- name: Mark the failed migration rolled back so the next deploy runs it again
  prisma_ops.migrate.prisma_migrate_resolve:
    env_file: /opt/schooliat/repo/Backend/.env
    name: 20250102000000_add_posts
    state: rolled_back
    method: native

- name: Preview a baseline of an existing database (check mode shows the statements, diff the rows)
  prisma_ops.migrate.prisma_migrate_resolve:
    database_url: "{{ vault_database_url }}"
    migrations_dir: /opt/schooliat/repo/Backend/src/prisma/db/migrations
    name:
      - 20250101000000_init
      - 20250102000000_add_posts
    state: applied
  check_mode: true
  diff: true
  register: preview

- name: Let the project's own Prisma CLI do it, waiting up to 60 s for a running deploy
  prisma_ops.migrate.prisma_migrate_resolve:
    env_file: /opt/schooliat/repo/Backend/.env
    project_dir: /opt/schooliat/repo/Backend
    migrations_dir: /opt/schooliat/repo/Backend/src/prisma/db/migrations
    name: 20250102000000_add_posts
    state: applied
    method: cli
    lock_timeout: 60
  register: resolved

- name: Show what ran
  ansible.builtin.debug:
    msg: "{{ resolved.method }}: {{ resolved.resolved }}"
"""

RETURN = r"""
changed:
  description: Whether any row was written (or, in check mode, would be).
  returned: always
  type: bool
method:
  description: The method that ran, C(native) or C(cli).
  returned: success
  type: str
  sample: native
method_reason:
  description: Why that method was chosen.
  returned: success
  type: str
resolved:
  description: The names whose rows were changed (or, in check mode, would be), in order.
  returned: always
  type: list
  elements: str
  sample: [20250102000000_add_posts]
outcomes:
  description: One entry per name given, in order.
  returned: success and on refusal
  type: list
  elements: dict
  contains:
    name:
      description: The migration name.
      type: str
    state:
      description: The requested state.
      type: str
    outcome:
      description: C(changed), C(unchanged) or C(refused).
      type: str
    code:
      description: Prisma's error code of a refusal (P3008, P3011, P3012, P3017, P3019) or C(no_migrations_table).
      type: str
    reason:
      description: Why, in one sentence.
      type: str
    actions:
      description: The writes, each with C(kind) (create_table, roll_back_row, insert_applied_row), C(row_id) and
        C(checksum) where they apply.
      type: list
      elements: dict
    warnings:
      description: Things the operator should know, such as a local script edited after apply.
      type: list
      elements: str
statements:
  description:
    - Native method, the SQL statements executed (or, in check mode, that would be; the new row's id then reads
      C(<new uuid v4>)). Never contains a secret.
  returned: success
  type: list
  elements: str
commands:
  description:
    - Cli method, each command run (or that would run) with C(argv), C(rc), C(stdout) and C(stderr) (secrets
      masked). The database URL is passed in the environment, never in C(argv).
  returned: success
  type: list
  elements: dict
rows:
  description: The C(_prisma_migrations) rows of the named migrations after the run (predicted in check mode).
  returned: success
  type: dict
table_created:
  description: C(_prisma_migrations) was created (baselining a database without it).
  returned: success
  type: bool
lock_waited:
  description: Seconds spent waiting for Prisma's lock (0 when it was free or not needed).
  returned: success
  type: float
lock:
  description: In check mode, the session holding Prisma's lock now, or null; a real run would wait for it.
  returned: check mode
  type: dict
code:
  description: On failure, a short code, Prisma's P-code where there is one (from the CLI or the refusal), or
    C(lock_timeout), C(row_lock_timeout), C(transaction_failed) (rolled back before COMMIT, nothing written),
    C(commit_unknown) (COMMIT got no answer - read the rows before running again), C(read_back), C(no_schema),
    C(history_not_a_table) (C(_prisma_migrations) is a view or another relation, never written into), C(cli_failed).
    Check mode refuses with the same codes as a real run.
  returned: failure
  type: str
sqlstate:
  description: On C(transaction_failed) or C(commit_unknown), the database's SQLSTATE; the message carries its advice.
  returned: failure
  type: str
lock_holder:
  description: On a lock timeout, the session that holds Prisma's lock (pid, application_name, user, client_addr,
    session_started_at, state).
  returned: failure
  type: dict
diff:
  description: In diff mode, the rows of the named migrations before and after.
  returned: diff mode
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.prisma_ops.migrate.plugins.module_utils.advisory_lock import lock_status
from ansible_collections.prisma_ops.migrate.plugins.module_utils.connection import (
    COMMON_ARGUMENT_SPEC, COMMON_MUTUALLY_EXCLUSIVE, COMMON_REQUIRED_ONE_OF, connect, resolve_connection, scrub,
    tools_url,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError
from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import secret_values as secret_environment_values
from ansible_collections.prisma_ops.migrate.plugins.module_utils.history import read_history, require_writable
from ansible_collections.prisma_ops.migrate.plugins.module_utils.migrations_dir import read_migrations_dir
from ansible_collections.prisma_ops.migrate.plugins.module_utils.resolve import (
    CHECK_MODE_ID, CLI_ENGINE_ARGV_WARNING, cli_argv, execute_native, normalize_names, parse_cli_error,
    plan_resolution, refusal_message, render_statement, rows_by_name, simulate_plans, statements_for, wait_lock_free,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.module_run import run_module

APPLICATION_NAME = "prisma_ops.migrate/prisma_migrate_resolve"
OUTPUT_LIMIT = 4000


def choose_method(params: dict) -> tuple:
    """(method, reason, argv prefix of the CLI or None)."""
    project_dir = params["project_dir"]
    default_cli = os.path.join(project_dir, "node_modules", ".bin", "prisma") if project_dir else None
    base = params["prisma_command"] or ([default_cli] if default_cli else None)
    method = params["method"]
    if method == "native":
        return "native", "method=native", None
    if method == "auto":
        if params["prisma_command"]:
            method, reason = "cli", "prisma_command is set"
        elif default_cli and os.path.exists(default_cli):
            method, reason = "cli", "the project's CLI %s exists" % default_cli
        else:
            where = default_cli or "project_dir (not given)"
            return "native", "no project CLI at %s" % where, None
    else:
        reason = "method=cli"
    if not project_dir:
        raise PrismaOpsError("the cli method runs the Prisma CLI in the app folder: set project_dir")
    if not os.path.isdir(project_dir):
        raise PrismaOpsError("project_dir %s is not a directory on this host" % project_dir)
    if not base or not base[0]:
        raise PrismaOpsError("prisma_command is empty")
    if os.sep in base[0]:
        path = base[0] if os.path.isabs(base[0]) else os.path.join(project_dir, base[0])
        if not os.path.exists(path):
            raise PrismaOpsError("the Prisma CLI %s does not exist: install the app's dependencies (npm ci), set "
                                 "prisma_command, or use method=native" % path)
    return "cli", reason, list(base)


def cli_environment(params: dict, url: str) -> dict:
    extra = dict(params["environment"] or {})
    names = {"DATABASE_URL", params["env_var"] or "DATABASE_URL"}
    for key in extra:
        if key in names:
            raise PrismaOpsError("environment must not set %s: the module passes the database URL to the CLI itself, "
                                 "from the connection options" % key)
    env = {"CHECKPOINT_DISABLE": "1", "PRISMA_HIDE_UPDATE_MESSAGE": "1", "NO_COLOR": "1"}
    env.update({str(k): str(v) for k, v in extra.items()})
    for key in names:
        env[key] = url
    return env


def run(module: AnsibleModule) -> dict:
    params = module.params
    # Values of secret-looking variables in environment never reach the result (invocation included).
    module.no_log_values.update(secret_environment_values(params["environment"]))
    names = normalize_names(params["name"])  # before connecting: bad names never reach the database or argv
    state = params["state"]
    spec = resolve_connection(params)
    module.no_log_values.update(spec.secrets)
    secrets = list(spec.secrets)
    if params["lock_timeout"] < 0:
        raise PrismaOpsError("lock_timeout must be 0 or more seconds")
    method, method_reason, cli_base = choose_method(params)

    migrations_dir = params["migrations_dir"]
    if not migrations_dir and params["project_dir"]:
        candidate = os.path.join(params["project_dir"], "prisma", "migrations")
        migrations_dir = candidate if os.path.isdir(candidate) else None
    local = read_migrations_dir(migrations_dir) if migrations_dir else None
    if state == "applied" and local is None and method == "native":
        raise PrismaOpsError("state=applied needs the local migration.sql for its checksum: set migrations_dir (or "
                             "project_dir with a prisma/migrations folder)")
    check_local = state == "applied" and local is not None

    cli_env = None
    if method == "cli":
        url = tools_url(params, spec)
        secrets.append(url)
        module.no_log_values.add(url)
        cli_env = cli_environment(params, url)

    conn = connect(spec, application_name=APPLICATION_NAME)
    try:
        history = read_history(conn, spec.schema)
        before_rows = history["rows"]
        check = module.check_mode
        # The same refusals as under the lock (execute_native), so check mode never predicts a write that is refused.
        require_writable(history, spec.schema, state)
        plans = plan_resolution(names, state, before_rows, history["table_exists"], local, check_local,
                                new_id=lambda: CHECK_MODE_ID)
        outcomes = [p.as_dict() for p in plans]
        refusal = refusal_message(plans)
        if refusal:
            code = next(p.code for p in plans if p.outcome == "refused")
            raise PrismaOpsError(refusal, code=code, outcomes=outcomes, changed=False, resolved=[], method=method)
        result = {"method": method, "method_reason": method_reason, "outcomes": outcomes, "lock_waited": 0.0,
                  "statements": [], "commands": [], "table_created": False}
        to_change = [p for p in plans if p.outcome == "changed"]
        if check or not to_change:
            # Nothing to write, or a preview: no lock taken (a second run never waits behind a deploy).
            if method == "native":
                result["statements"] = [render_statement(conn, sql, prm) for p in to_change
                                        for sql, prm in statements_for(p, spec.schema)]
            else:
                result["commands"] = [{"argv": cli_argv(cli_base, state, p.name), "rc": None} for p in to_change]
            result["table_created"] = any(a.kind == "create_table" for p in to_change for a in p.actions)
            if check:
                result["lock"] = lock_status(conn)[0]
            after_rows = simulate_plans(before_rows, plans)
        elif method == "native":
            done = execute_native(conn, spec.schema, names, state, local, check_local, params["lock_timeout"], secrets)
            plans = done["plans"]
            result.update(outcomes=[p.as_dict() for p in plans], statements=done["statements"],
                          lock_waited=round(done["lock_waited"], 3), table_created=done["table_created"])
            before_rows, after_rows = done["before"], done["after"]
        else:
            after_rows = run_cli(module, conn, spec, plans, state, cli_base, cli_env, secrets, result)
    finally:
        conn.close()

    resolved = [p["name"] for p in result["outcomes"] if p["outcome"] == "changed"]
    result.update(changed=bool(resolved), resolved=resolved, rows=rows_by_name(after_rows, names))
    if module._diff:
        result["diff"] = {"before": rows_by_name(before_rows, names), "after": result["rows"],
                          "before_header": "_prisma_migrations rows of %s" % ", ".join(dict.fromkeys(names)),
                          "after_header": "_prisma_migrations rows of %s" % ", ".join(dict.fromkeys(names))}
    verb = "would mark" if module.check_mode else "marked"
    result["msg"] = ("%s %s %s" % (verb, ", ".join(resolved), state.replace("_", " "))) if resolved else \
        "nothing to do: %s" % "; ".join("%s %s" % (p["name"], p["reason"]) for p in result["outcomes"])
    return result


def run_cli(module, conn, spec, plans, state, cli_base, cli_env, secrets, result) -> list:
    """One `prisma migrate resolve` per name that needs a change; P-codes become structured failures."""
    resolved = []
    module.warn(CLI_ENGINE_ARGV_WARNING + "; method=native writes the same rows without that")
    for plan in plans:
        if plan.outcome != "changed":
            continue
        result["lock_waited"] = round(result["lock_waited"] + wait_lock_free(conn, module.params["lock_timeout"]), 3)
        argv = cli_argv(cli_base, state, plan.name)
        rc, out, err = module.run_command(argv, cwd=module.params["project_dir"], environ_update=cli_env,
                                          check_rc=False)
        out, err = scrub(out or "", secrets), scrub(err or "", secrets)
        result["commands"].append({"argv": argv, "rc": rc, "stdout": out[-OUTPUT_LIMIT:], "stderr": err[-OUTPUT_LIMIT:]})
        if rc != 0:
            parsed = parse_cli_error(out + "\n" + err)
            details = {}
            if parsed["code"] == "P1002":
                details["lock_holder"] = lock_status(conn)[0]
            raise PrismaOpsError(
                "prisma migrate resolve %s %s failed (exit %s)%s: %s%s" % (
                    "--applied" if state == "applied" else "--rolled-back", plan.name, rc,
                    " with %s" % parsed["code"] if parsed["code"] else "", parsed["message"],
                    "; already resolved by this task: %s" % ", ".join(resolved) if resolved else ""),
                code=parsed["code"] or "cli_failed", cli_message=parsed["message"], commands=result["commands"],
                changed=bool(resolved), resolved=resolved, method="cli")
        resolved.append(plan.name)
    after = read_history(conn, spec.schema)["rows"]
    # Trust the table, not the exit code.
    for plan in plans:
        mine = [r for r in after if r.migration_name == plan.name]
        ok = not any(r.is_failed for r in mine) and (state != "applied" or any(r.is_applied for r in mine))
        if plan.outcome == "changed" and not ok:
            raise PrismaOpsError("the Prisma CLI exited 0 for %s but _prisma_migrations does not show it %s: check "
                                 "that project_dir's Prisma configuration points at this database and schema"
                                 % (plan.name, state.replace("_", " ")), code="cli_no_effect",
                                 commands=result["commands"], changed=bool(resolved), resolved=resolved, method="cli")
    return after


def main() -> None:
    argument_spec = dict(COMMON_ARGUMENT_SPEC)
    argument_spec.update(
        name=dict(type="list", elements="str", required=True),
        state=dict(type="str", required=True, choices=["applied", "rolled_back"]),
        migrations_dir=dict(type="path"),
        method=dict(type="str", default="native", choices=["auto", "native", "cli"]),
        project_dir=dict(type="path"),
        prisma_command=dict(type="list", elements="str"),
        environment=dict(type="dict"),
        lock_timeout=dict(type="int", default=10),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=COMMON_MUTUALLY_EXCLUSIVE,
        required_one_of=COMMON_REQUIRED_ONE_OF,
        supports_check_mode=True,
    )
    run_module(module, run, {"resolved": []}, not_done="nothing was written")


if __name__ == "__main__":
    main()
