#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: prisma_migrate_deploy
short_description: Run the project's own prisma migrate deploy with the database URL in its environment only
version_added: 1.0.0
description:
  - Runs the app's deploy command (by default C(project_dir/node_modules/.bin/prisma migrate deploy)) in
    I(project_dir), with the database URL in its environment, never on its command line and never in the result.
  - The Prisma CLI itself then passes the URL, password included, on the command line of its schema engine child
    (Prisma 7 for every engine run, Prisma 6 for its connection check), readable in the host's process table while
    the engine runs. No module can prevent that; the task warns about it. Deploy has no native replacement.
  - Parses the outcome, the migrations the CLI applied and, on failure, the Prisma error code (for example P3009 or
    P3018) and message.
  - Success is what Prisma says, not only exit 0 - an exit 0 without Prisma's C(No pending migrations to apply) or its
    list of applied migrations fails (code C(deploy_unconfirmed)), since nothing shows a deploy ran.
  - Refuses commands that contain C(migrate dev), C(db push) or C(reset), which can drop data, however they are
    wrapped - C(sh -c "..."), C(bash -lc '...'), C(env X=1 ...), C(npx), C(pnpm exec), C(yarn), C(exec), commands
    joined with C(;), C(&&), C(||) or C(|). Every argument that holds more than one word is read as a shell script and
    searched too.
  - Out of the guard's reach, so keep them out of the deploy command yourself - what a script file or an C(npm run)
    target runs (C(npm run db:reset) is only a name here), and a shell variable or C(eval) that spells the command at
    run time.
author:
  - prisma_ops.migrate maintainers (@prisma-ops)
extends_documentation_fragment:
  - prisma_ops.migrate.connection
attributes:
  check_mode:
    support: partial
    description: Runs in check mode without running the deploy command.
    details: In check mode the deploy command is not run (it cannot preview itself); the result says what would run,
      with C(changed=false) and an empty C(applied). With O(cli_check), the read-only C(prisma migrate status) runs.
  diff_mode:
    support: none
    description: No diff.
options:
  project_dir:
    description:
      - The app folder the command runs in (holding C(node_modules), C(package.json), the schema or
        C(prisma.config.ts)).
    type: path
    required: true
  command:
    description:
      - The deploy command as an argument list, for example C([npx, prisma, migrate, deploy, --schema,
        prisma/schema.prisma]) or C([npm, run, prisma:migrate:deploy]).
      - Defaults to the project's own CLI as M(prisma_ops.migrate.prisma_project_info) finds it - C(project_dir/
        node_modules/.bin/prisma migrate deploy) (C(prisma7) beside a C(prisma7.config.*)), with C(--schema) only
        for a project without a config file.
    type: list
    elements: str
  environment:
    description:
      - Extra environment variables for the command. C(DATABASE_URL) (and I(env_var)) are refused here; the module
        sets them from the connection options. Values (4 characters or more) of variables whose name contains PASS,
        PWD, SECRET, TOKEN, KEY, URL, CREDENTIAL or AUTH, here or in the module's own environment that the command
        inherits (C(DB_PWD), C(PGPASSWORD)...), and the password of any URL among them, are masked in the result.
    type: dict
  container:
    description:
      - Run the command inside this container (the app's), for hosts where the app runs in Docker, as
        C(<container_exec> -e DATABASE_URL [-e NAME]... [-w container_workdir] [-u container_user] <container>
        <command>). The URL and the O(environment) variables reach the container as C(-e NAME), their values copied
        by the container CLI from its own environment, never on a command line.
      - O(project_dir) is still the directory on this host the container CLI runs in (for example where a
        C(compose.yml) lives).
    type: str
  container_exec:
    description:
      - The command that runs a program in O(container), as a list, for example C([docker, compose, exec, -T]) with
        a compose service name as O(container).
    type: list
    elements: str
    default: [docker, exec]
  container_workdir:
    description: The app's directory inside the container (C(-w)); defaults to the container's working directory.
    type: str
  container_user:
    description: The user the command runs as inside the container (C(-u)), for example the app user.
    type: str
  cli_check:
    description:
      - In check mode, run the project's own C(prisma migrate status) (read-only) with the deploy's environment,
        directory and container, and fail when the CLI cannot load its config or schema (code C(cli_unusable)),
        cannot reach the database, or names another database, schema or server in its C(Datasource) line than the
        connection options (code C(cli_other_database)), or when the host's Node is older than the project's Prisma
        needs (7.x - C(^20.19 || ^22.12 || >=24), 6.x - C(>=18.18); code C(node_too_old)). The recover role runs it
        before the backup, so a deploy that cannot run stops the host before any write.
    type: bool
    default: true
  status_command:
    description:
      - The status command for O(cli_check), as a list. Defaults to O(command) with its C(migrate deploy) turned into
        C(migrate status); a command that shows no C(migrate deploy) (an C(npm run) script) needs this set, or the
        check is skipped with a warning.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Deploy pending migrations with the URL from the app's .env, read on the host
  prisma_ops.migrate.prisma_migrate_deploy:
    env_file: /opt/schooliat/repo/Backend/.env
    project_dir: /opt/schooliat/repo/Backend
    command: [npx, prisma, migrate, deploy, --schema, src/prisma/db/schema.prisma]
  register: deploy

- name: Or run the app's own npm script, with the URL from the vault
  prisma_ops.migrate.prisma_migrate_deploy:
    database_url: "{{ vault_database_url }}"
    project_dir: /opt/schooliat/repo/Backend
    command: [npm, run, --silent, "prisma:migrate:deploy"]
  register: deploy_again

- name: Say what each run applied
  ansible.builtin.debug:
    msg: "first: {{ deploy.applied }}; second: {{ deploy_again.applied }}"
"""

RETURN = r"""
applied:
  description: Names of the migrations the command applied, from its output.
  returned: always
  type: list
  elements: str
code:
  description: The Prisma error code on failure (for example C(P3009)); C(deploy_unconfirmed) when the command exited 0
    but printed neither Prisma's C(No pending migrations to apply) nor a list of applied migrations (a wrapper that
    did not run Prisma, or an engine stand-in that applied nothing); in check mode C(cli_unusable) or
    C(cli_other_database) (O(cli_check)); or null.
  returned: failure
  type: str
cli_check:
  description:
    - In check mode with O(cli_check) - C(checked), the status command's C(argv) and C(rc), C(datasource) (the
      C(database), C(schema) and C(at) the CLI printed, C(at) null with a driver adapter), and C(versions) (C(node)
      and the project's C(prisma), where the deploy runs; null when unknown).
  returned: check mode
  type: dict
argv:
  description: The command that ran (no secret).
  returned: always
  type: list
  elements: str
rc:
  description:
    - Exit code of the command. Absent in check mode, where nothing runs (Ansible reads any C(rc) other than 0 as a
      failed task).
  returned: when the command ran
  type: int
stdout:
  description: The end of the command's output, with secrets removed.
  returned: always
  type: str
"""

import os
import re
import shlex

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.prisma_ops.migrate.plugins.module_utils.connection import (
    COMMON_ARGUMENT_SPEC, COMMON_MUTUALLY_EXCLUSIVE, COMMON_REQUIRED_ONE_OF, resolve_connection, tools_url,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.cli_check import (
    VERSIONS_SCRIPT, first_lines, mismatches, node_problem, parse_datasource, parse_versions, status_argv,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.container import check_container_args, container_argv
from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError, mask, secret_values
from ansible_collections.prisma_ops.migrate.plugins.module_utils.resolve import (
    ANSI_ESCAPE, CLI_ENGINE_ARGV_WARNING, parse_cli_error,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.module_run import run_module
from ansible_collections.prisma_ops.migrate.plugins.module_utils.prisma_project import discover

OUTPUT_LIMIT = 4000
# `└─ 20240115000000_guardians/` in the list printed after "have been applied".
# A name may hold spaces and punctuation; never a slash.
_APPLIED = re.compile(r"^[ \t]*[└├]─[ \t]*([^/\n]+?)/[ \t]*$", re.M)
FORBIDDEN = (("migrate", "dev"), ("db", "push"), ("migrate", "reset"), ("db", "reset"))


# Shell punctuation that separates commands; a word holding it (or a space) is read as a script.
_SCRIPT_CHARS = re.compile(r"[\s;&|()<>`]")


def command_words(argv: list, depth: int = 0) -> list:
    """argv's words, with every argument that looks like a shell script (`sh -c "..."`, `env -S "..."`, `npx -c
    "..."`) split as the shell would and searched in turn. Separators stay words of their own, so a pair never spans
    two commands."""
    words = []
    for arg in argv:
        arg = str(arg)
        if depth < 8 and _SCRIPT_CHARS.search(arg):
            lexer = shlex.shlex(arg, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            try:
                parts = list(lexer)
            except ValueError:  # unbalanced quotes: the shell fails too; search the pieces anyway
                parts = arg.split()
            words += command_words(parts, depth + 1) if parts != [arg] else [arg]
        else:
            words.append(arg)
    return words


_SEPARATORS = frozenset((";", "&&", "||", "|", "&", "(", ")", ";;", "|&", "\n"))


def check_command(argv: list) -> None:
    words = [w.lower() for w in command_words(argv)]
    # Per command of a script: `prisma migrate --schema x reset` is still a reset, `deploy; echo dev` is not a dev.
    segments = [[]]
    for word in words:
        if word in _SEPARATORS:
            segments.append([])
        else:
            segments[-1].append(word)
    for first, second in FORBIDDEN:
        for segment in segments:
            if first in segment and second in segment[segment.index(first) + 1:]:
                raise PrismaOpsError("refusing to run `%s %s`: it can drop data; only `migrate deploy` is run" % (first, second))
    if "reset" in words or "--force-reset" in words or "--accept-data-loss" in words:
        raise PrismaOpsError("refusing a command with reset / --force-reset / --accept-data-loss")


def parse_applied(output: str) -> list:
    text = ANSI_ESCAPE.sub("", output or "")
    if "have been applied" not in text:
        return []
    return _APPLIED.findall(text.split("have been applied", 1)[1])


def default_argv(params: dict) -> list:
    """The deploy command: the given one, else the project's own Prisma CLI as prisma_project_info finds it."""
    return list(params["command"] or discover(params["project_dir"]).deploy_argv())


def run(module: AnsibleModule) -> dict:
    params = module.params
    # The command inherits this process's environment too: its secrets must not come back in the output either.
    env_secrets = secret_values(params["environment"]) + secret_values(os.environ)
    module.no_log_values.update(env_secrets)
    project_dir = params["project_dir"]
    argv = default_argv(params)
    if not argv or not argv[0]:
        raise PrismaOpsError("command is empty")
    check_command(argv)
    if not os.path.isdir(project_dir):
        raise PrismaOpsError("project_dir %s is not a directory on this host" % project_dir)
    spec = resolve_connection(params)
    module.no_log_values.update(spec.secrets)
    url = tools_url(params, spec)
    module.no_log_values.add(url)
    secrets = list(spec.secrets) + [url] + env_secrets
    names = {"DATABASE_URL", params["env_var"] or "DATABASE_URL"}
    env = {"CHECKPOINT_DISABLE": "1", "PRISMA_HIDE_UPDATE_MESSAGE": "1", "NO_COLOR": "1"}
    for key, value in (params["environment"] or {}).items():
        if key in names:
            raise PrismaOpsError("environment must not set %s: the module sets it from the connection options" % key)
        env[str(key)] = str(value)
    for key in names:
        env[key] = url
    if params["container"]:
        check_container_args(params["container"], params["container_exec"])
        # Only the names go on the command line; the container CLI copies the values from its environment.
        argv = container_argv(params["container_exec"], params["container"], sorted(env),
                              workdir=params["container_workdir"], user=params["container_user"]) + argv
    # What is shown of the command: a secret written into it (`sh -c "PGPASSWORD=... ..."`) is masked there too.
    shown = [mask(arg, secrets) for arg in argv]
    if module.check_mode:
        result = {"changed": False, "applied": [], "argv": shown, "stdout": "",
                  "msg": "check mode: would run %s in %s" % (" ".join(shown), project_dir)}
        if params["cli_check"]:
            result["cli_check"] = check_cli(module, params, env, spec, secrets, project_dir)
            result["msg"] += "; %s" % result["cli_check"]["msg"]
        return result
    module.warn(CLI_ENGINE_ARGV_WARNING)
    rc, out, err = module.run_command(argv, cwd=project_dir, environ_update=env, check_rc=False)
    output = mask((out or "") + ("\n" + err if err else ""), secrets)
    applied = parse_applied(output)
    result = {"changed": bool(applied), "applied": applied, "argv": shown, "rc": rc, "stdout": output[-OUTPUT_LIMIT:]}
    if rc != 0:
        parsed = parse_cli_error(output)
        code = " with %s" % parsed["code"] if parsed["code"] else ""
        raise PrismaOpsError("%s failed (exit %s)%s: %s" % (" ".join(shown), rc, code, parsed["message"]),
                             code=parsed["code"], **result)
    if not applied and not deploy_confirmed(output):
        # A wrapper that never ran Prisma, or a stand-in engine (PRISMA_SCHEMA_ENGINE_BINARY=/bin/true with 7.x)
        # exits 0 having applied nothing: success must be what Prisma itself says.
        raise PrismaOpsError("%s exited 0 but printed neither Prisma's \"No pending migrations to apply\" nor a list "
                             "of applied migrations, so nothing shows that prisma migrate deploy ran: check the command "
                             "(and its wrapper script) runs it; nothing is taken as deployed" % " ".join(shown),
                             code="deploy_unconfirmed", **result)
    result["msg"] = ("applied %s" % ", ".join(applied)) if applied else "no pending migrations"
    return result


def check_cli(module: AnsibleModule, params: dict, env: dict, spec, secrets: list, project_dir: str) -> dict:
    """Run the project's `prisma migrate status` (read-only) as the deploy would run; fail when the CLI cannot load its
    config or schema, cannot reach the database, or names another database than the modules use (cli_check.py)."""
    deploy_argv = default_argv(params)
    argv = status_argv(deploy_argv, params["status_command"])
    if argv is None:
        module.warn("the deploy command %s does not show a `migrate deploy` to turn into `migrate status`: set "
                    "status_command to check the CLI before any write" % " ".join(mask(a, secrets) for a in deploy_argv))
        return {"checked": False, "msg": "the CLI was not checked (no status command)"}
    check_command(argv)
    prefix = (container_argv(params["container_exec"], params["container"], sorted(env),
                             workdir=params["container_workdir"], user=params["container_user"])
              if params["container"] else [])
    # Node and the project's Prisma, where the deploy runs: Prisma 7 needs a newer Node than 6 did.
    try:
        _rc, out, _err = module.run_command(prefix + ["node", "-e", VERSIONS_SCRIPT], cwd=project_dir,
                                            environ_update=env, check_rc=False, handle_exceptions=False)
    except OSError:
        out = ""  # no node on this PATH (an nvm install, a container): unknown, the status run below tells
    versions = parse_versions(out)
    problem = node_problem(versions["node"], versions["prisma"])
    if problem:
        raise PrismaOpsError("%s. Nothing was changed" % problem, code="node_too_old",
                             cli_check={"checked": True, "versions": versions})
    argv = prefix + argv
    shown = [mask(arg, secrets) for arg in argv]
    rc, out, err = module.run_command(argv, cwd=project_dir, environ_update=env, check_rc=False)
    output = mask((out or "") + ("\n" + err if err else ""), secrets)
    datasource = parse_datasource(output)
    result = {"checked": True, "argv": shown, "rc": rc, "datasource": datasource, "versions": versions}
    if datasource is None:
        raise PrismaOpsError("the project's Prisma CLI cannot load its config or schema here (%s, exit %s): %s. The "
                             "deploy would fail the same way; nothing was changed. Fix the project's config or "
                             "schema path (or the deploy command), then run again"
                             % (" ".join(shown), rc, first_lines(output)), code="cli_unusable", cli_check=result)
    parsed = parse_cli_error(output)
    if parsed["code"] and parsed["code"].startswith("P1"):
        raise PrismaOpsError("the project's Prisma CLI cannot use the database (%s): %s. Nothing was changed"
                             % (parsed["code"], parsed["message"]), code="cli_unusable", cli_check=result)
    different = mismatches(datasource, spec.dbname, spec.schema, spec.host, spec.port)
    if different:
        raise PrismaOpsError("the project's Prisma CLI would touch another database than the modules: %s. Nothing was "
                             "changed; make the CLI's config and the connection options name the same database"
                             % "; ".join("%s %r for the CLI, %r for the modules" % d for d in different),
                             code="cli_other_database", cli_check=result)
    result["msg"] = "the project's Prisma CLI (Prisma %s, Node %s) loads and targets database %s" % (
        versions["prisma"] or "?", versions["node"] or "?", datasource["database"])
    return result


def deploy_confirmed(output: str) -> bool:
    """Prisma's own words for a deploy with nothing to do (6.x and 7.x print the same)."""
    return "No pending migrations to apply" in ANSI_ESCAPE.sub("", output or "")


def main() -> None:
    argument_spec = dict(COMMON_ARGUMENT_SPEC)
    argument_spec.update(
        project_dir=dict(type="path", required=True),
        command=dict(type="list", elements="str"),
        environment=dict(type="dict"),
        container=dict(type="str"),
        container_exec=dict(type="list", elements="str", default=["docker", "exec"]),
        container_workdir=dict(type="str"),
        container_user=dict(type="str"),
        cli_check=dict(type="bool", default=True),
        status_command=dict(type="list", elements="str"),
    )
    module = AnsibleModule(argument_spec=argument_spec, mutually_exclusive=COMMON_MUTUALLY_EXCLUSIVE,
                           required_one_of=COMMON_REQUIRED_ONE_OF, supports_check_mode=True)
    run_module(module, run, {"applied": []})


if __name__ == "__main__":
    main()
