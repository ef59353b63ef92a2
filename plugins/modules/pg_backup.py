#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_backup
short_description: A verified, atomic, private pg_dump of the app's database, with the app's own credentials
version_added: 1.0.0
description:
  - Runs C(pg_dump) against the database the connection options name (the app's URL, its C(.env) on the host, or
    C(login_*) options), over TCP with the app's own credentials, as the app connects.
  - The password reaches C(pg_dump) as C(PGPASSFILE=/dev/fd/N), an inherited 0600 memfd (a file in memory only), so
    it is never on a command line, in the child's environment or on any file system, and a killed run leaves it
    nowhere. Where there is no memfd_create (not Linux), a 0600 file in a private 0700 directory, removed afterwards.
  - O(backup_dir), each directory above it, and every backup file and manifest in it must be owned by the module's
    user or root (or O(owner)) and writable by no one else (a sticky directory such as C(/tmp) above it is fine);
    symlinks are refused. Otherwise the task fails before changing anything, with the C(chown)/C(chmod) that fixes
    it (C(code=untrusted)). Files are opened relative to the directory's descriptor without following symlinks.
  - Picks the C(pg_dump) whose major version matches the server among C(/usr/lib/postgresql/*/bin) and C(PATH) (or a
    newer one). When every C(pg_dump) is older than the server, fails naming both versions and what to install.
  - Writes to a hidden temporary name in O(backup_dir), verifies it (C(pg_restore --list) for the custom and directory
    formats, the C(-- PostgreSQL database dump complete) marker for plain), fsyncs, then renames it to
    C(<backup_dir>/<prefix>-<database>-<UTC timestamp>.<dump|sql|dir>). A sidecar C(<name>.manifest.json) records the
    database, server and pg_dump versions, size, sha256, duration, the restore command and the C(_prisma_migrations)
    rows of the very snapshot the dump was taken from.
  - Files are 0600 and directories 0700 (O(backup_dir) included), owned by O(owner) and O(group) when given.
  - On any failure (a pg_dump error, disk full, an unwritable directory, a missing binary) the task fails with one
    message carrying pg_dump's own words (secrets masked) and leaves no final and no temporary file.
author:
  - prisma_ops.migrate maintainers (@prisma-ops)
extends_documentation_fragment:
  - prisma_ops.migrate.connection
attributes:
  check_mode:
    support: full
    description: Returns the path it would write, or the backup it would reuse, and what retention would delete;
      writes nothing.
  diff_mode:
    support: none
    description: Nothing to compare; the result says what was written or would be.
options:
  backup_dir:
    description:
      - Directory on the managed host for the backups, for example C(/opt/schooliat/shared/backups). Created 0700 when
        missing; an existing one is set to 0700.
    type: path
    required: true
  prefix:
    description:
      - First part of the backup's name. Letters, digits, C(.), C(_) and C(-).
      - Retention only ever looks at names with this prefix.
    type: str
    default: prisma
  format:
    description:
      - C(custom) is C(pg_dump -Fc), compressed, restored with C(pg_restore).
      - C(plain) is SQL text, restored with C(psql).
      - C(directory) is C(pg_dump -Fd), one file per table; the only format dumped with parallel O(jobs).
    type: str
    choices: [custom, plain, directory]
    default: custom
  jobs:
    description:
      - Parallel pg_dump workers, with O(format=directory) only. Each opens its own connection.
    type: int
  compress:
    description:
      - Compression level from 0 (none) to 9, for the custom and directory formats. Defaults to pg_dump's own.
    type: int
  schema_only:
    description:
      - Dump the schema only, no data.
    type: bool
    default: false
  tables:
    description:
      - Dump only the tables matching these pg_dump patterns (C(--table)), for example C(public.users).
    type: list
    elements: str
  exclude_tables:
    description:
      - Leave out the tables matching these pg_dump patterns (C(--exclude-table)).
    type: list
    elements: str
  reuse_within:
    description:
      - When a verified backup of the same database, server and selection (format, schema_only, tables) younger than
        this exists in O(backup_dir), and its content still matches its manifest's sha256, return it with
        C(changed=false) instead of taking a new one. This is what makes a re-run of a recovery idempotent.
      - Only when nothing was written in the database since that backup. Its manifest records the write position
        of the dump's snapshot (C(position), from C(txid_current_snapshot())) and every relation's oid, file and live
        row count and every sequence's value (C(state)). It is reused only if no transaction was running when it was
        taken, the C(_prisma_migrations) rows are the same, and either no transaction with a transaction id has ended
        on the server since, or the ones that did (autovacuum, another database) wrote no row of this database (no
        live row with a newer C(xmin), the same relations, files, counts and sequence values). A manifest without
        C(position) (an older version's) is never reused.
      - A duration such as C(30m), C(2h), C(1d12h), C(1w), or a number of seconds. Unset or 0 never reuses.
    type: str
  keep_last:
    description:
      - After the backup, delete this database's older backups beyond the newest O(keep_last) (the new one counts).
      - Only names of this module's pattern for this O(prefix) and database that have a manifest naming them are ever
        considered; the backup just taken or reused is never deleted.
    type: int
  max_age:
    description:
      - After the backup, delete this database's backups older than this (same duration syntax as O(reuse_within)),
        under the same rules as O(keep_last). With both, a backup goes when either says so.
    type: str
  owner:
    description:
      - User (name or uid) to own the backup files and O(backup_dir). Needs privileges to change ownership.
    type: str
  group:
    description:
      - Group (name or gid) of the backup files and O(backup_dir).
    type: str
  pg_dump_path:
    description:
      - The pg_dump to use instead of searching C(/usr/lib/postgresql/*/bin) and C(PATH). It must not be older than the
        server. C(pg_restore) and C(psql) are taken from the same directory when they are there.
      - With O(container), the path of pg_dump inside the container (default C(pg_dump) on its C(PATH)).
    type: path
  container:
    description:
      - Run C(pg_dump) (and C(pg_restore --list) to verify) inside this container, for hosts where PostgreSQL runs in
        Docker, as C(<container_exec> -i -e PGPASSWORD <container> pg_dump ...). The dump streams out on standard output
        into the same hidden temporary file on this host, and is verified, fsynced and renamed as usual.
      - The password reaches the container as C(-e PGPASSWORD), the value copied by the container CLI from its own
        environment; it is never on a command line.
      - The connection options must be reachable both from this host (the module reads the history) and from inside
        the container (pg_dump connects with the same host and port), as with host networking or a port published on
        the loopback address the container also listens on.
      - Not with O(format=directory).
    type: str
  container_exec:
    description:
      - The command that runs a program in O(container), as a list, for example C([docker, compose, -f,
        /opt/schooliat/compose.yml, exec, -T]) with a compose service name as O(container).
    type: list
    elements: str
    default: [docker, exec]
  space_factor:
    description:
      - When set and a new backup would be taken (not one reused with O(reuse_within)), first compare the free disk
        of O(backup_dir) (of its nearest existing parent when it does not exist yet), as C(statvfs) gives it to a
        non-root writer, with C(pg_database_size()) of the database times this factor. When it is less, fail with
        C(code=no_space) before anything is written, O(backup_dir) included; in check mode too, so a check-mode run
        is a one-call free-space check.
      - For example C(1.0) (a dump is rarely larger than the database), or C(0) to only report the figures. Must not be
        negative. Unset, nothing is checked.
    type: float
notes:
  - The module reads the history rows and exports its snapshot (C(pg_export_snapshot)), and pg_dump dumps that same
    snapshot, so the manifest's C(_prisma_migrations) rows are exactly those in the dump.
  - O(space_factor) is an estimate taken before the dump; a disk that fills during the dump still fails the backup
    cleanly (C(code=pg_dump_failed) or C(io_error)), leaving no file behind.
  - C(restore_command) holds no password; run it where C(~/.pgpass) or C(PGPASSWORD) provides one. For the custom and
    directory formats it replaces the objects in the named database (C(--clean --if-exists)); a plain dump is
    restored into an empty database.
  - A backup in progress that is killed leaves a hidden C(.<name>.tmp-*) entry (never the password); no later run
    mistakes it for a backup.
seealso:
  - module: prisma_ops.migrate.prisma_migration_info
  - name: pg_dump
    description: PostgreSQL's documentation of pg_dump.
    link: https://www.postgresql.org/docs/current/app-pgdump.html
"""

EXAMPLES = r"""
- name: Back up before touching the schema, reusing one taken in the last two hours
  prisma_ops.migrate.pg_backup:
    env_file: /opt/schooliat/repo/Backend/.env
    backup_dir: /opt/schooliat/shared/backups
    reuse_within: 2h
    keep_last: 10
  register: backup

- name: A parallel directory-format dump with the app's login options
  prisma_ops.migrate.pg_backup:
    login_host: 127.0.0.1
    login_port: 5432
    login_user: schooliat
    login_password: "{{ vault_app_db_password }}"
    login_db: schooliat
    backup_dir: /opt/schooliat/shared/backups
    prefix: nightly
    format: directory
    jobs: 2
    max_age: 7d

- name: Preview (check mode) the plain SQL dump that would be written
  prisma_ops.migrate.pg_backup:
    database_url: "{{ vault_database_url }}"
    backup_dir: /opt/schooliat/shared/backups
    format: plain
  check_mode: true
  register: preview

- name: Only check (one call) that a new backup would fit on the disk, twice the database size
  prisma_ops.migrate.pg_backup:
    env_file: /opt/schooliat/repo/Backend/.env
    backup_dir: /opt/schooliat/shared/backups
    reuse_within: 2h
    space_factor: 2
  check_mode: true

- name: Say how to restore it
  ansible.builtin.debug:
    msg: "{{ backup.path }} ({{ backup.size }} bytes, sha256 {{ backup.sha256 }}): {{ backup.restore_command }}"
"""

RETURN = r"""
changed:
  description: Whether a backup was written or a file deleted (or, in check mode, would be).
  returned: always
  type: bool
path:
  description: The backup (a file, or a directory for the directory format); in check mode, the one it would write or
    reuse.
  returned: success
  type: str
  sample: /opt/schooliat/shared/backups/prisma-schooliat-20250102T030405Z.dump
manifest:
  description: The JSON manifest beside the backup, C(<path>.manifest.json).
  returned: success
  type: str
size:
  description: Bytes of the backup (all files of a directory backup); null in check mode unless reused.
  returned: success
  type: int
sha256:
  description:
    - sha256 of the backup file; of a directory backup, sha256 of its C(sha256sum)-style listing (hash, two spaces,
      relative name, sorted). Null in check mode unless reused.
  returned: success
  type: str
reused:
  description: An existing verified backup younger than O(reuse_within) was returned instead of a new one.
  returned: success
  type: bool
age:
  description: Seconds since the reused backup finished.
  returned: when reused
  type: float
restore_command:
  description: The C(pg_restore) or C(psql) command that restores this backup into the same database. No password.
  returned: success
  type: str
  sample: >-
    /usr/lib/postgresql/15/bin/pg_restore --host=127.0.0.1 --port=5432 --username=schooliat --dbname=schooliat
    --clean --if-exists --exit-on-error --single-transaction /opt/schooliat/shared/backups/prisma-schooliat-20250102T030405Z.dump
duration:
  description: Seconds from the start of pg_dump to the verified, fsynced backup.
  returned: success
  type: float
database:
  description: The database dumped.
  returned: success
  type: str
format:
  description: The format of the backup.
  returned: success
  type: str
server_version:
  description: The server's version.
  returned: success
  type: str
pg_dump_version:
  description: C(pg_dump --version) of the pg_dump used.
  returned: success
  type: str
verification:
  description: How the backup was verified (C(method), and C(toc_entries) for C(pg_restore --list)).
  returned: when a backup was taken
  type: dict
prisma_migrations:
  description: How many C(_prisma_migrations) rows the manifest records.
  returned: when a backup was taken
  type: int
deleted:
  description: Backups deleted by retention (or, in check mode, that would be), with their manifests.
  returned: success
  type: list
  elements: str
free_bytes:
  description: Bytes free (for a non-root writer) in O(backup_dir), or its nearest existing parent when it does not exist
    yet, when the O(space_factor) check ran. Also in the C(no_space) failure.
  returned: when O(space_factor) is set and a new backup is (or would be) taken
  type: int
database_size:
  description: C(pg_database_size()) of the database in bytes, when the O(space_factor) check ran. Also in the
    C(no_space) failure.
  returned: when O(space_factor) is set and a new backup is (or would be) taken
  type: int
notes:
  description: Things worth knowing, such as a backup not reused because its content no longer matches its manifest.
  returned: success
  type: list
  elements: str
code:
  description: On failure, a short code such as C(pg_dump_failed), C(version_mismatch), C(pg_dump_missing),
    C(unwritable), C(untrusted), C(verify_failed), C(io_error), C(no_space) (the O(space_factor) check),
    C(size_unknown).
  returned: failure
  type: str
stderr:
  description: On a pg_dump failure, its standard error (secrets masked).
  returned: failure
  type: str
cmd:
  description: On a pg_dump failure, its argument list. It never holds the password.
  returned: failure
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.prisma_ops.migrate.plugins.module_utils.backup import BackupOptions, run_backup
from ansible_collections.prisma_ops.migrate.plugins.module_utils.connection import (
    COMMON_ARGUMENT_SPEC, COMMON_MUTUALLY_EXCLUSIVE, COMMON_REQUIRED_ONE_OF, resolve_connection,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.module_run import run_module


class BackupModule(AnsibleModule):
    """AnsibleModule, minus the stat of `path` it adds to results: `size` is the backup's own (for a directory
    backup, the sum of its files) and must not be replaced by the size of a directory inode."""

    def add_path_info(self, kwargs):
        return kwargs


def run(module: AnsibleModule) -> dict:
    opts = BackupOptions.from_params(module.params)
    spec = resolve_connection(module.params)
    module.no_log_values.update(spec.secrets)
    result = run_backup(spec, opts, check_mode=module.check_mode)
    verb = "would reuse" if result["reused"] and module.check_mode else "reused" if result["reused"] else \
        "would write" if module.check_mode else "wrote"
    result["msg"] = "%s %s" % (verb, result["path"])
    if result["deleted"]:
        result["msg"] += "; %s %d old backup(s)" % ("would delete" if module.check_mode else "deleted",
                                                    len(result["deleted"]))
    return result


def main() -> None:
    argument_spec = dict(COMMON_ARGUMENT_SPEC)
    argument_spec.update(
        backup_dir=dict(type="path", required=True),
        prefix=dict(type="str", default="prisma"),
        format=dict(type="str", default="custom", choices=["custom", "plain", "directory"]),
        jobs=dict(type="int"),
        compress=dict(type="int"),
        schema_only=dict(type="bool", default=False),
        tables=dict(type="list", elements="str"),
        exclude_tables=dict(type="list", elements="str"),
        reuse_within=dict(type="str"),
        keep_last=dict(type="int"),
        max_age=dict(type="str"),
        owner=dict(type="str"),
        group=dict(type="str"),
        pg_dump_path=dict(type="path"),
        container=dict(type="str"),
        container_exec=dict(type="list", elements="str", default=["docker", "exec"]),
        space_factor=dict(type="float"),
    )
    module = BackupModule(
        argument_spec=argument_spec,
        mutually_exclusive=COMMON_MUTUALLY_EXCLUSIVE,
        required_one_of=COMMON_REQUIRED_ONE_OF,
        supports_check_mode=True,
    )
    run_module(module, run, not_done="no backup written")


if __name__ == "__main__":
    main()
