#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_restore
short_description: Restore a verified pg_backup into the app's database, all or nothing, and check the history after
version_added: 1.0.0
description:
  - Restores a backup taken by M(prisma_ops.migrate.pg_backup), the one at O(path) or the newest one in O(backup_dir)
    whose content still matches its manifest, into the database the connection options name.
  - Refuses to run unless O(confirm) is that database's name. Check mode needs no O(confirm) and shows the plan.
  - Before restoring, the backup's sha256 and size must match its manifest. Backups without a manifest, partial ones
    (C(schema_only), C(tables)) and tampered ones are refused and nothing is changed.
  - Every schema the backup holds, and the connection's schema, is emptied first (C(DROP SCHEMA ... CASCADE)); the
    C(public) schema is recreated with its owner, grants and comment. Unlike C(pg_restore --clean), this leaves no
    table a later migration created. The connecting user must own those schemas.
  - The whole restore is one transaction run by C(psql) with C(ON_ERROR_STOP=1) that first takes Prisma's advisory
    lock (72707369) without waiting; custom and directory archives are turned into SQL by C(pg_restore) and piped
    into it. Any failure leaves the database as it was.
  - After the restore, C(_prisma_migrations) must equal the rows the manifest recorded, else the task fails.
  - The password reaches C(psql) as C(PGPASSFILE=/dev/fd/N), an inherited 0600 memfd, never argv, the child's
    environment nor a file on disk; with O(container), through C(PGPASSWORD) passed by name (C(-e PGPASSWORD)) from
    the environment of the container engine's client.
  - The backup, its manifest and their directory (and its ancestors) must be owned by the module's user or root and
    writable by no one else, and not be symlinks; otherwise it fails with what to fix (C(code=untrusted)).
  - A plain SQL backup is fed to C(psql) behind a first line C(\restrict <random key>) (psql 17.6, 16.10, 15.14,
    14.19, 13.22 and later), so a psql meta-command in the file (C(\!), C(\o |cmd), C(\copy ... program),
    C(\i)...) is refused and the restore rolls back (C(code=meta_command_refused)); COPY data stays data.
  - Idempotent. After a restore, C(<path>.restored.json) records the backup's sha256 and the database's state
    (after an C(ANALYZE)); the same backup again returns C(changed=false) and C(already_restored=true) and runs
    nothing (check mode too) when nothing was written in the database since. That is, no transaction with a
    transaction id ended on the server since, or none of those wrote a row of this database (no live row of a
    table or catalog with a newer C(xmin), the same relations, files, live row counts and sequence values). Any
    write since means a real restore.
  - It does not take the backup of the current state itself; run M(prisma_ops.migrate.pg_backup) first and pass its
    path as O(pre_restore_backup) (the C(prisma_ops.migrate.restore) role does).
author:
  - prisma_ops.migrate maintainers (@prisma-ops)
extends_documentation_fragment:
  - prisma_ops.migrate.connection
attributes:
  check_mode:
    support: full
    description: Verifies the backup, checks ownership and tools, and returns the plan (which backup, which database,
      what would be dropped and restored); writes nothing and needs no O(confirm).
  diff_mode:
    support: full
    description: The C(_prisma_migrations) rows now and in the backup, one line each.
options:
  path:
    description:
      - The backup to restore (a file, or the directory of a directory-format backup), with its C(.manifest.json)
        beside it.
      - Mutually exclusive with O(backup_dir).
    type: path
  backup_dir:
    description:
      - Restore the newest backup of this database with O(prefix) in this directory whose content matches its
        manifest. Newer ones that do not verify are skipped and named in C(notes).
    type: path
  prefix:
    description:
      - The pg_backup O(prisma_ops.migrate.pg_backup#module:prefix) of the backups O(backup_dir) is searched for.
    type: str
    default: prisma
  confirm:
    description:
      - Must equal the name of the database being replaced. A typo-proof guard against restoring into the wrong
        database; without it a real run fails before connecting and says what to pass.
    type: str
  pre_restore_backup:
    description:
      - The backup of the current state taken just before (the RV(prisma_ops.migrate.pg_backup#module:path) of
        M(prisma_ops.migrate.pg_backup)). When given it must verify, be of the same database and not be the backup
        being restored; it is returned, so the restore can be undone.
    type: path
  lock_timeout:
    description:
      - Seconds to wait for a lock held by another session (the app, a long query) before giving up with nothing
        changed.
    type: int
    default: 60
  container:
    description:
      - Run C(pg_restore) and C(psql) inside this container (C(<container_exec> -i <container> ...)), for hosts
        whose PostgreSQL client lives in the database container, as M(prisma_ops.migrate.pg_backup) runs
        C(pg_dump). The backup is streamed on stdin, so the directory
        format is not supported there. The connection options must reach the database from inside the container as
        well as from the host (for example C(127.0.0.1) with host networking, or a port published to loopback).
    type: str
  container_exec:
    description:
      - The command that runs a program in O(container), as a list, for example C([podman, exec]) or C([docker,
        compose, -f, /opt/schooliat/compose.yml, exec, -T]) with a compose service name as O(container); the same
        option as in M(prisma_ops.migrate.pg_backup).
    type: list
    elements: str
    default: [docker, exec]
notes:
  - A restore replaces the whole content of the schemas concerned; objects in schemas the backup does not know are
    left alone. Sessions of the app must be stopped first, or the restore waits O(lock_timeout) and gives up.
  - Large objects in a plain dump are refused (the dump has its own transaction); restore a custom backup instead.
seealso:
  - module: prisma_ops.migrate.pg_backup
  - name: pg_restore
    description: PostgreSQL's documentation of pg_restore.
    link: https://www.postgresql.org/docs/current/app-pgrestore.html
"""

EXAMPLES = r"""
- name: Show which backup would be restored, and what would be done (no confirm needed)
  prisma_ops.migrate.pg_restore:
    env_file: /opt/schooliat/repo/Backend/.env
    backup_dir: /opt/schooliat/shared/backups
  check_mode: true
  register: plan

- name: Back up the current state first, so the restore can itself be undone
  prisma_ops.migrate.pg_backup:
    env_file: /opt/schooliat/repo/Backend/.env
    backup_dir: /opt/schooliat/shared/backups
    prefix: pre-restore
  register: current

- name: Restore it
  prisma_ops.migrate.pg_restore:
    env_file: /opt/schooliat/repo/Backend/.env
    path: "{{ plan.path }}"
    confirm: schooliat
    pre_restore_backup: "{{ current.path }}"

- name: Restore a custom-format backup with the client of the database container
  prisma_ops.migrate.pg_restore:
    env_file: /opt/schooliat/repo/Backend/.env
    path: /opt/schooliat/shared/backups/prisma-schooliat-20250102T030405Z.dump
    confirm: schooliat
    container: schooliat-db
"""

RETURN = r"""
changed:
  description: Whether the database was restored (in check mode, would be).
  returned: always
  type: bool
path:
  description: The backup restored (or, in check mode, that would be).
  returned: success
  type: str
  sample: /opt/schooliat/shared/backups/prisma-schooliat-20250102T030405Z.dump
manifest:
  description: Its manifest, C(<path>.manifest.json).
  returned: success
  type: str
format:
  description: C(custom), C(directory) or C(plain).
  returned: success
  type: str
database:
  description: The database restored into.
  returned: success
  type: str
server:
  description: C(host:port) of the server.
  returned: success
  type: str
verified:
  description: The backup's sha256 and size matched its manifest before anything was done.
  returned: success
  type: bool
sha256:
  description: The backup's sha256, as checked.
  returned: success
  type: str
history_matches:
  description:
    - After the restore, C(_prisma_migrations) equals the rows of the manifest (always true on success).
    - In check mode, whether the database already holds those rows.
  returned: success
  type: bool
pre_restore_backup:
  description: The backup of the state before the restore, as given in O(pre_restore_backup), or null.
  returned: success
  type: str
schemas:
  description: The schemas emptied and restored.
  returned: success
  type: list
  elements: str
plan:
  description: What is done (or would be), step by step.
  returned: success
  type: list
  elements: str
backup_finished_at:
  description: When the backup restored was taken (UTC).
  returned: success
  type: str
duration:
  description: Seconds the restore itself took.
  returned: when restored
  type: float
notes:
  description: Things worth knowing, such as newer backups skipped because they do not verify.
  returned: success
  type: list
  elements: str
container:
  description: The container the client ran in, or null.
  returned: success
  type: str
already_restored:
  description: The backup was already in place (restored by this module, nothing written since); nothing was done.
  returned: success
  type: bool
restored_at:
  description: When the restore committed (UTC); when RV(already_restored), when that earlier restore did.
  returned: when restored or already restored
  type: str
code:
  description: On failure, a short code such as C(not_confirmed), C(checksum_mismatch), C(no_backup), C(no_manifest),
    C(partial_backup), C(wrong_database), C(not_owner), C(restore_failed), C(history_mismatch), C(untrusted),
    C(meta_command_refused), C(unsupported).
  returned: failure
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.prisma_ops.migrate.plugins.module_utils.connection import (
    COMMON_ARGUMENT_SPEC, COMMON_MUTUALLY_EXCLUSIVE, COMMON_REQUIRED_ONE_OF, resolve_connection,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.module_run import run_module
from ansible_collections.prisma_ops.migrate.plugins.module_utils.restore import RestoreOptions, run_restore


class RestoreModule(AnsibleModule):
    """AnsibleModule, minus the stat of `path` it adds to results (a backup, not something this task changed)."""

    def add_path_info(self, kwargs):
        return kwargs


def run(module: AnsibleModule) -> dict:
    opts = RestoreOptions.from_params(module.params)
    spec = resolve_connection(module.params)
    module.no_log_values.update(spec.secrets)
    result = run_restore(spec, opts, check_mode=module.check_mode)
    diff = result.pop("diff")
    if module._diff:
        result["diff"] = diff
    if result["already_restored"]:
        result["msg"] = "%s is already in place in %s: nothing written since its restore, nothing to do" % (
            result["path"], result["database"])
    else:
        result["msg"] = "%s %s into %s" % ("would restore" if module.check_mode else "restored", result["path"],
                                           result["database"])
    return result


def main() -> None:
    argument_spec = dict(COMMON_ARGUMENT_SPEC)
    argument_spec.update(
        path=dict(type="path"),
        backup_dir=dict(type="path"),
        prefix=dict(type="str", default="prisma"),
        confirm=dict(type="str"),
        pre_restore_backup=dict(type="path"),
        lock_timeout=dict(type="int", default=60),
        container=dict(type="str"),
        container_exec=dict(type="list", elements="str", default=["docker", "exec"]),
    )
    module = RestoreModule(
        argument_spec=argument_spec,
        mutually_exclusive=COMMON_MUTUALLY_EXCLUSIVE + [("path", "backup_dir")],
        required_one_of=COMMON_REQUIRED_ONE_OF + [("path", "backup_dir")],
        supports_check_mode=True,
    )
    run_module(module, run, not_done="nothing restored")


if __name__ == "__main__":
    main()
