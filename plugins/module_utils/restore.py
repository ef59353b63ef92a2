# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_restore's logic: put a verified pg_backup back into the app's database, all or nothing.

Plain Python (no Ansible imports) so unit tests call it directly. It reuses backup.py for names,
manifests, checksums, the client programs and the private password file.

Why not `pg_restore --clean`: it drops only the objects the dump holds, so a table a later
migration created survives the restore and the next `prisma migrate deploy` trips over it. Instead
every schema the backup holds (and the connection's schema) is emptied first, in the same
transaction as the restore:

- a schema the dump creates itself is dropped (`DROP SCHEMA ... CASCADE`); the dump recreates it;
- `public`, which pg_dump never creates, is dropped and recreated with its owner, its grants and
  its comment as they were.

The connecting user must own (or be a member of the owner of) each of those schemas; that is
checked before anything runs. The whole restore is one transaction: psql runs with
ON_ERROR_STOP=1, and only the dump's own final COMMIT (or psql --single-transaction's, for a plain
file) commits, so a failure at any point leaves the database as it was. The transaction first
takes Prisma's advisory lock (72707369) without waiting, so a restore never interleaves with a
running `prisma migrate deploy`.

Every backup and manifest is read through backup.TrustedDir (a directory and files owned by this
user or root, writable by no one else, opened without following a symlink). A plain SQL dump is fed
to psql on stdin after a first line `\\restrict <random key>` the file cannot know: psql then refuses
every meta-command (`\\!`, `\\o |cmd`, `\\copy ... program`, `\\i`, `\\connect`, ...) wherever it stands,
with its own lexer, while COPY data stays data (plain_script).

After a restore (and an ANALYZE), `<backup>.restored.json` records the backup's sha256 and the database's
state (database_state: the server's write position, and every relation's oid, file and live row count, every
sequence's value). A second request for the same backup is a no-op that says so when nothing was written
since: no transaction with an id ended on the server, or the ones that did wrote no row of this database
(no live row with a newer xmin, the same relations, counts and sequence values). Any write: a real restore.
"""

from __future__ import annotations

import datetime
import os
import re
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

from ansible_collections.prisma_ops.migrate.plugins.module_utils.advisory_lock import PRISMA_LOCK_KEY
from ansible_collections.prisma_ops.migrate.plugins.module_utils.backup import (
    EXT_TO_FORMAT, FORMATS, MANIFEST_SUFFIX, PREFIX_RE, RESTORED_SUFFIX, STDERR_LIMIT, TOOL, Passfile,
    conninfo_quote, find_tools, first_lines, history_for_manifest, list_backups, open_backup, parse_time,
    database_state, passfile_line, read_manifest, server_major, tool_version, unchanged_since,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.container import (
    DEFAULT_CONTAINER_EXEC, check_container_args, container_argv,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.connection import (
    ConnectionSpec, connect, scrub, server_info,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError
from ansible_collections.prisma_ops.migrate.plugins.module_utils.history import quote_ident

APPLICATION_NAME = "prisma_ops.migrate/pg_restore"
# The header pg_dump writes before every object: "-- Name: User; Type: TABLE; Schema: public; Owner: app".
HEADER_RE = re.compile(r"^-- (?:Data for )?Name: .*; Type: (?P<type>[^;]*); Schema: (?P<schema>[^;]*); Owner: .*$")
SCHEMA_HEADER_RE = re.compile(r"^-- Name: (?P<name>.*); Type: SCHEMA; Schema: -; Owner: .*$")
SYSTEM_SCHEMAS = frozenset(("pg_catalog", "information_schema", "pg_toast"))
# A plain dump with its own transaction statements (large objects) would commit half way through ours.
PLAIN_TXN_RE = re.compile(r"^(BEGIN|COMMIT|ROLLBACK|END|START TRANSACTION)\s*;\s*$", re.I)
TIME_FIELDS = ("started_at", "finished_at", "rolled_back_at")
ROW_FIELDS = ("migration_name", "checksum", "started_at", "finished_at", "rolled_back_at", "applied_steps_count", "logs")
# Warnings psql prints that say nothing is wrong (the dump's own BEGIN inside ours).
HARMLESS_STDERR = ("there is already a transaction in progress",)
# psql's \restrict mode (CVE-2025-8714): the first release of each branch that has it.
RESTRICT_SINCE = {13: 22, 14: 19, 15: 14, 16: 10, 17: 6}
# The dump's own \restrict line (pg_dump 17.6/16.10/15.14/14.19/13.22 and later) and its closing \unrestrict.
OWN_RESTRICT_RE = re.compile(rb"^\\restrict ([A-Za-z0-9]+)$")
OWN_UNRESTRICT_RE = re.compile(rb"^\\unrestrict ([A-Za-z0-9]+)$")
META_REFUSED = ("backslash commands are restricted", "\\unrestrict: wrong key")


# ---------------------------------------------------------------------------------------------
# Inputs


@dataclass
class RestoreOptions:
    path: str | None = None
    backup_dir: str | None = None
    prefix: str = "prisma"
    confirm: str | None = None
    container: str | None = None
    # `<container_exec> -i <container> psql ...`, as pg_backup and prisma_migrate_deploy run theirs (container.py).
    container_exec: list = field(default_factory=lambda: list(DEFAULT_CONTAINER_EXEC))
    pre_restore_backup: str | None = None
    lock_timeout: int = 60

    @classmethod
    def from_params(cls, params: dict) -> "RestoreOptions":
        """Validate the module options; one clear error per bad input, before anything runs."""
        path = params.get("path")
        backup_dir = params.get("backup_dir")
        if bool(path) == bool(backup_dir):
            raise PrismaOpsError("give either path (one backup) or backup_dir (the newest verified backup there), "
                                 "not %s" % ("both" if path else "neither"))
        prefix = params.get("prefix") or "prisma"
        if not PREFIX_RE.match(prefix):
            raise PrismaOpsError("prefix %r is not a pg_backup prefix: letters, digits, '.', '_' and '-'" % prefix)
        container = params.get("container") or None
        container_exec = list(params.get("container_exec") or DEFAULT_CONTAINER_EXEC)
        if container is not None:
            check_container_args(container, container_exec)
        lock_timeout = params.get("lock_timeout")
        lock_timeout = 60 if lock_timeout is None else int(lock_timeout)
        if lock_timeout < 1:
            raise PrismaOpsError("lock_timeout must be at least 1 second")

        def absolute(value):
            return os.path.abspath(os.path.expanduser(str(value))) if value else None

        return cls(path=absolute(path), backup_dir=absolute(backup_dir), prefix=prefix,
                   confirm=params.get("confirm"), container=container, container_exec=container_exec,
                   pre_restore_backup=absolute(params.get("pre_restore_backup")), lock_timeout=lock_timeout)


def expected_database(spec: ConnectionSpec) -> str:
    """The database the connection names; libpq defaults it to the user name."""
    return spec.dbname or spec.user or ""


def confirm_error(confirm, database: str, target: str) -> PrismaOpsError | None:
    """None when confirm names the database, else the error that says what to pass."""
    if confirm is not None and str(confirm) == database:
        return None
    said = "confirm is not set" if confirm in (None, "") else "confirm=%r is not the database's name" % str(confirm)
    return PrismaOpsError(
        "%s: a restore replaces everything in database %s (%s). Pass confirm=%s (restore_confirm=%s with the "
        "restore role) to go ahead, or run in check mode to see the plan first; nothing was changed"
        % (said, database, target, database, database), code="not_confirmed")


# ---------------------------------------------------------------------------------------------
# Choosing and verifying the backup


def format_of(path: str, manifest: dict) -> str:
    fmt = manifest.get("format")
    ext = path.rsplit(".", 1)[-1] if "." in os.path.basename(path) else ""
    if fmt not in FORMATS or EXT_TO_FORMAT.get(ext) != fmt:
        raise PrismaOpsError("%s: its manifest says format %r, which does not match the name; it was not made by "
                             "pg_backup" % (path, fmt), code="bad_manifest")
    return fmt


def verify_backup(path: str) -> dict:
    """The backup and its manifest, after proving the bytes still hash to the manifest's sha256.

    Both are read through a TrustedDir (backup.py): a backup in a directory another user could write, a file of
    another user, or a symlink is refused with what to fix. Also refuses what cannot be restored safely: no
    manifest, a partial selection, no history rows to check."""
    if os.path.islink(path):
        raise PrismaOpsError("%s is a symbolic link: give the backup itself" % path, code="bad_backup")
    if not os.path.exists(path):
        raise PrismaOpsError("backup %s does not exist on this host" % path, code="no_backup")
    trusted, name = open_backup(path)
    with trusted:
        manifest = read_manifest(trusted, name)
        if manifest is None or manifest.get("file") != name:
            raise PrismaOpsError("%s has no pg_backup manifest (%s%s) naming it: only backups taken by "
                                 "prisma_ops.migrate.pg_backup can be verified and restored"
                                 % (path, name, MANIFEST_SUFFIX), code="no_manifest")
        fmt = format_of(path, manifest)
        if not manifest.get("verified"):
            raise PrismaOpsError("%s was not verified when it was taken" % path, code="bad_manifest")
        selection = manifest.get("selection") or {}
        if selection.get("schema_only") or selection.get("tables") or selection.get("exclude_tables"):
            raise PrismaOpsError("%s holds only part of the database (schema_only, tables or exclude_tables): "
                                 "restoring it would lose the rest, so this module does not; use pg_restore by hand"
                                 % path, code="partial_backup")
        history = manifest.get("prisma_migrations") or {}
        if history.get("error") or "rows" not in history:
            raise PrismaOpsError("the manifest of %s has no _prisma_migrations rows (%s), so the restore could not "
                                 "be verified: restore it by hand" % (path, history.get("error") or "missing"),
                                 code="bad_manifest")
        try:
            digest, size = trusted.checksum(name)
        except PrismaOpsError:
            raise
        except OSError as exc:
            raise PrismaOpsError("cannot read %s: %s" % (path, exc.strerror or exc), code="bad_backup")
    if digest != manifest.get("sha256") or size != manifest.get("size"):
        raise PrismaOpsError("%s does not match its manifest: sha256 %s and %d bytes now, %s and %s bytes when it was "
                             "taken. It was changed or damaged; nothing was restored" % (
                                 path, digest, size, manifest.get("sha256"), manifest.get("size")),
                             code="checksum_mismatch")
    return {"path": path, "manifest_path": path + MANIFEST_SUFFIX, "manifest": manifest, "format": fmt,
            "sha256": digest, "size": size}


def choose_backup(backups: list, verify=verify_backup) -> tuple:
    """(the newest backup that verifies, notes on the newer ones that did not); backups are newest first.

    An untrusted file is not skipped: it stops the choice, since someone else wrote in the directory."""
    notes = []
    for backup in backups:
        try:
            return verify(backup["path"]), notes
        except PrismaOpsError as exc:
            if exc.details.get("code") == "untrusted":
                raise
            notes.append("skipped %s: %s" % (backup["path"], exc.msg))
    return None, notes


def pick_backup(opts: RestoreOptions, database: str) -> tuple:
    """The verified backup to restore, from `path` or the newest verified one in `backup_dir`."""
    if opts.path:
        chosen = verify_backup(opts.path)
        if chosen["manifest"].get("database") != database:
            raise PrismaOpsError("%s is a backup of database %s, not of %s: restore it into its own database"
                                 % (opts.path, chosen["manifest"].get("database"), database), code="wrong_database")
        return chosen, []
    backups = list_backups(opts.backup_dir, opts.prefix, database)
    chosen, notes = choose_backup(backups)
    if chosen is None:
        found = "%d backup(s), none verifies: %s" % (len(backups), "; ".join(notes)) if backups else "no backup"
        raise PrismaOpsError("%s in %s for database %s with prefix %s: give path, or take one with pg_backup"
                             % (found, opts.backup_dir, database, opts.prefix), code="no_backup")
    return chosen, notes


# ---------------------------------------------------------------------------------------------
# History comparison


def _normal_row(row: dict) -> dict:
    out = {}
    for key in ROW_FIELDS:
        value = row.get(key)
        if key in TIME_FIELDS and value is not None:
            value = parse_time(value) or value  # instants, whatever the session time zone printed
        out[key] = value
    return out


def compare_history(expected: dict, actual: dict) -> list:
    """Differences between the manifest's _prisma_migrations and the database's, one line each; [] when equal."""
    problems = []
    if bool(expected.get("table_exists")) != bool(actual.get("table_exists")):
        problems.append("the table %s in the backup but %s now" % (
            "exists" if expected.get("table_exists") else "does not exist",
            "exists" if actual.get("table_exists") else "does not exist"))
    want = {r["id"]: r for r in expected.get("rows") or []}
    have = {r["id"]: r for r in actual.get("rows") or []}
    for row_id in sorted(set(want) - set(have)):
        problems.append("row %s (%s) is missing" % (row_id, want[row_id].get("migration_name")))
    for row_id in sorted(set(have) - set(want)):
        problems.append("row %s (%s) is not in the backup" % (row_id, have[row_id].get("migration_name")))
    for row_id in sorted(set(want) & set(have)):
        a, b = _normal_row(want[row_id]), _normal_row(have[row_id])
        fields = [k for k in ROW_FIELDS if a[k] != b[k]]
        if fields:
            problems.append("row %s (%s) differs in %s" % (row_id, a["migration_name"], ", ".join(fields)))
    return problems


def history_lines(history: dict) -> str:
    """_prisma_migrations as diff text: one line per row, in order."""
    if not history.get("table_exists"):
        return "(no _prisma_migrations table)\n"
    lines = []
    for row in history.get("rows") or []:
        state = "rolled back" if row.get("rolled_back_at") else "applied" if row.get("finished_at") else "FAILED"
        lines.append("%s %s (%s)" % (row.get("migration_name"), state, row.get("id")))
    return "\n".join(lines) + "\n" if lines else "(empty)\n"


# ---------------------------------------------------------------------------------------------
# What the dump holds, and the SQL that empties its schemas


def dump_schemas(lines) -> tuple:
    """(schemas the dump holds, schemas it creates itself) from pg_dump's object headers."""
    referenced, created = set(), set()
    for line in lines:
        if not line.startswith("-- "):
            continue
        line = line.rstrip("\r\n")
        match = SCHEMA_HEADER_RE.match(line)
        if match:
            created.add(match.group("name"))
            referenced.add(match.group("name"))
            continue
        match = HEADER_RE.match(line)
        if match and match.group("schema") != "-":
            referenced.add(match.group("schema"))
    # pg_dump never creates public (only ALTERs its owner or comment): it is always recreated here.
    return referenced - SYSTEM_SCHEMAS, created - SYSTEM_SCHEMAS - {"public"}


def plain_has_transaction(lines) -> bool:
    return any(PLAIN_TXN_RE.match(line) for line in lines)


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def preamble_sql(schemas: list, lock_timeout: int, begin: bool) -> str:
    """The statements that start the restore transaction: Prisma's lock, then empty every schema.

    `schemas`: dicts with name, exists, recreate (pg_dump will not create it), owner, grants
    [(grantee or None for PUBLIC, privilege, grantable)], comment.
    """
    out = ["BEGIN;"] if begin else []
    out.append("SET LOCAL lock_timeout = '%ds';" % lock_timeout)
    out.append("SET LOCAL client_min_messages = warning;")  # no NOTICE per dropped object
    out.append("DO $prisma_ops$ BEGIN IF NOT pg_try_advisory_xact_lock(%d) THEN RAISE EXCEPTION "
               "'Prisma''s advisory lock (%d) is held: a prisma migrate deploy or resolve is running; nothing was "
               "restored'; END IF; END $prisma_ops$;" % (PRISMA_LOCK_KEY, PRISMA_LOCK_KEY))
    for schema in sorted(schemas, key=lambda s: s["name"]):
        name = quote_ident(schema["name"])
        if schema["exists"]:
            out.append("DROP SCHEMA %s CASCADE;" % name)
        if schema["recreate"]:
            owner = schema.get("owner")
            out.append("CREATE SCHEMA %s%s;" % (name, (" AUTHORIZATION %s" % quote_ident(owner)) if owner else ""))
            for grantee, privilege, grantable in schema.get("grants") or []:
                if grantee is not None and grantee == owner:
                    continue  # the owner's own privileges come with CREATE SCHEMA
                out.append("GRANT %s ON SCHEMA %s TO %s%s;" % (privilege, name,
                                                               "PUBLIC" if grantee is None else quote_ident(grantee),
                                                               " WITH GRANT OPTION" if grantable else ""))
            if schema.get("comment") is not None:
                out.append("COMMENT ON SCHEMA %s IS %s;" % (name, sql_literal(schema["comment"])))
    return "\n".join(out)


SCHEMA_FACTS = """
SELECT n.nspname, pg_get_userbyid(n.nspowner), pg_has_role(current_user, n.nspowner, 'MEMBER'),
       obj_description(n.oid, 'pg_namespace'),
       (SELECT coalesce(json_agg(json_build_array(CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END,
                                                  a.privilege_type, a.is_grantable) ORDER BY a.grantee, a.privilege_type),
                        '[]') FROM aclexplode(n.nspacl) a)
FROM pg_namespace n WHERE n.nspname = ANY(%s)
"""


def schema_plan(conn, referenced: set, created: set, connection_schema: str) -> list:
    """What to drop and recreate, with each schema's owner, grants and comment; refuses what the user cannot do."""
    names = sorted((referenced | created | {connection_schema}) - SYSTEM_SCHEMAS)
    with conn.cursor() as cur:
        cur.execute(SCHEMA_FACTS, (names,))
        facts = {r[0]: r[1:] for r in cur.fetchall()}
        cur.execute("SELECT current_user, has_database_privilege(current_database(), 'CREATE')")
        user, can_create = cur.fetchone()
    plan = []
    for name in names:
        if name in facts:
            owner, member, comment, grants = facts[name]
            if not member:
                raise PrismaOpsError("schema %s is owned by %s, not by %s: the restore drops and recreates it, so "
                                     "connect as %s, or ALTER SCHEMA %s OWNER TO %s; nothing was changed"
                                     % (name, owner, user, owner, quote_ident(name), quote_ident(user)),
                                     code="not_owner")
            plan.append({"name": name, "exists": True, "recreate": name not in created, "owner": owner,
                         "grants": [tuple(g) for g in grants], "comment": comment})
        elif name not in created:
            plan.append({"name": name, "exists": False, "recreate": True, "owner": None, "grants": [], "comment": None})
    if not can_create and plan:
        raise PrismaOpsError("%s has no CREATE privilege on the database, which recreating its schemas needs: GRANT "
                             "CREATE ON DATABASE to it, or connect as the database owner; nothing was changed" % user,
                             code="not_owner")
    return plan


# ---------------------------------------------------------------------------------------------
# Command lines (no secret in any of them)


def client_conninfo(spec: ConnectionSpec) -> str:
    """A libpq connection string for --dbname with everything but the password (as backup.py builds pg_dump's)."""
    kwargs = spec.libpq_kwargs(APPLICATION_NAME)
    kwargs.pop("password", None)
    if kwargs.pop("sslpassword", None):
        raise PrismaOpsError("the connection uses sslpassword, which psql could only get on its command line: use "
                             "a client key without a passphrase")
    return " ".join("%s=%s" % (key, conninfo_quote(value)) for key, value in sorted(kwargs.items()))


def exec_prefix(opts: RestoreOptions, password: bool) -> list:
    """`<container_exec> -i [-e PGPASSWORD] <container>`: the password goes by name, its value only in the environment."""
    if not opts.container:
        return []
    return container_argv(opts.container_exec, opts.container, ["PGPASSWORD"] if password else [], stdin=True)


def render_argv(opts: RestoreOptions, tools: dict, path: str, schema_only: bool = False) -> list:
    """pg_restore turning a custom or directory archive into the SQL script psql runs (it never connects).

    A custom archive comes on stdin, from the descriptor the backup was verified through (in a container too);
    a directory archive, which cannot be streamed, by its path in the trusted directory."""
    base = [tools["pg_restore"], "--file=-"]
    if schema_only:
        base.append("--schema-only")
    else:
        base.append("--single-transaction")  # the script's own BEGIN ... COMMIT: no COMMIT unless it is complete
    if opts.container:
        return exec_prefix(opts, False) + base
    return base + ([path] if EXT_TO_FORMAT.get(path.rsplit(".", 1)[-1]) == "directory" else [])


def psql_argv(opts: RestoreOptions, tools: dict, spec: ConnectionSpec, fmt: str, path: str, preamble: str) -> list:
    """psql reading its script on stdin: pg_restore's output, or a plain dump behind a \\restrict line (plain_script)."""
    argv = exec_prefix(opts, bool(spec.password)) + [
        tools["psql"], "--no-psqlrc", "--no-password", "--quiet", "--set=ON_ERROR_STOP=1",
        "--dbname=%s" % client_conninfo(spec)]
    if fmt == "plain":
        # The file is complete and verified: psql's own transaction around the preamble and the file.
        argv.append("--single-transaction")
    # Otherwise the preamble opens the transaction; only the script's final COMMIT ends it.
    return argv + ["--command=%s" % preamble, "--file=-"]


def container_tools() -> dict:
    return {"pg_restore": "pg_restore", "psql": "psql"}


def has_restrict(version: tuple) -> bool:
    """Whether psql of this (major, minor) version has \\restrict (CVE-2025-8714)."""
    major, minor = version[0], version[1] if len(version) > 1 else 0
    return major >= 18 or (major in RESTRICT_SINCE and minor >= RESTRICT_SINCE[major])


def plain_script(lines, key: str):
    """The plain dump's lines behind `\\restrict <key>`, for psql's stdin.

    With a key the dump cannot know, psql refuses every backslash command after that line (only `\\unrestrict
    <key>` is allowed), found by psql's own lexer: at a line's start, after a statement on the same line, in any
    place psql would run one; COPY data is data and passes. The dump's own first `\\restrict` line and its closing
    `\\unrestrict` of the same key (pg_dump 15.14 and later write them) are left out, as psql would refuse a second
    \\restrict; any other copy of them is passed on, and refused."""
    yield b"\\restrict " + key.encode("ascii") + b"\n"
    own = None
    started = False
    held = []  # the dump's closing \unrestrict, and the comments after it: dropped only at the end of the file
    for line in lines:
        bare = line.strip()
        quiet = not bare or bare.startswith(b"--")
        if not started and not quiet:
            started = True
            match = OWN_RESTRICT_RE.match(bare)
            if match:
                own = match.group(1)
                continue
        if held:
            if quiet:
                held.append(line)
                continue
            yield from held
            held = []
        if own is not None:
            match = OWN_UNRESTRICT_RE.match(bare)
            if match and match.group(1) == own:
                held.append(line)
                continue
        yield line
    yield from held[1:]


# ---------------------------------------------------------------------------------------------
# Running


def _stderr_text(handle, secrets: list) -> str:
    handle.seek(0)
    text = handle.read().decode("utf-8", errors="replace")
    lines = [line for line in text.splitlines() if not any(h in line for h in HARMLESS_STDERR)]
    return scrub("\n".join(lines), secrets)


def _feed(pipe, chunks) -> None:
    """Write `chunks` into a child's stdin; a child that exits early (EPIPE) ends the writing."""
    try:
        for chunk in chunks:
            pipe.write(chunk)
    except (BrokenPipeError, ValueError, OSError):
        pass
    finally:
        try:
            pipe.close()
        except OSError:
            pass


def run_pipeline(stages: list, stdin, env: dict, secrets: list, pass_fds: tuple = ()) -> list:
    """Run argv lists as a pipeline (each one's stdout into the next); [(argv, rc, stderr)] for each.

    `stdin`: a descriptor the first stage reads, an iterable of bytes written to it by a thread, or None."""
    procs, errs = [], []
    feeder = None
    first_stdin = subprocess.DEVNULL if stdin is None else stdin if isinstance(stdin, int) else subprocess.PIPE
    try:
        previous = first_stdin
        for index, argv in enumerate(stages):
            err = tempfile.TemporaryFile()  # pylint: disable=consider-using-with
            errs.append(err)
            last = index == len(stages) - 1
            try:
                proc = subprocess.Popen(argv, stdin=previous, stdout=subprocess.DEVNULL if last else subprocess.PIPE,
                                        stderr=err, env=env, pass_fds=pass_fds)  # pylint: disable=consider-using-with
            except OSError as exc:
                for running in procs:
                    running.kill()
                    running.wait()
                raise PrismaOpsError("cannot run %s: %s; nothing was changed" % (argv[0], exc.strerror or exc),
                                     code="tool_missing")
            if procs and procs[-1].stdout:
                procs[-1].stdout.close()  # so the producer sees EPIPE if the consumer dies
            if index == 0 and first_stdin is subprocess.PIPE:
                feeder = threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True)
                feeder.start()
            previous = proc.stdout
            procs.append(proc)
        for proc in procs:
            proc.wait()
        if feeder is not None:
            feeder.join()
        return [(argv, proc.returncode, _stderr_text(err, secrets)) for argv, proc, err in zip(stages, procs, errs)]
    finally:
        for err in errs:
            err.close()


def _scan(trusted, name: str, fmt: str, opts: RestoreOptions, tools: dict, env: dict, secrets: list) -> tuple:
    """Which schemas the dump holds (and, for plain, whether it has its own transaction statements)."""
    path = trusted.join(name)
    if fmt == "plain":
        own_txn = []

        def lines(handle):
            # One streaming pass over a file that may be gigabytes: headers, and any BEGIN/COMMIT of its own.
            for line in handle:
                if not own_txn and PLAIN_TXN_RE.match(line):
                    own_txn.append(True)
                yield line

        with os.fdopen(trusted.open(name), "r", encoding="utf-8", errors="replace") as handle:
            schemas = dump_schemas(lines(handle))
        return schemas, bool(own_txn)
    argv = render_argv(opts, tools, path, schema_only=True)
    fd = trusted.open(name) if fmt == "custom" else None
    try:
        proc = subprocess.run(argv, stdin=fd if fd is not None else subprocess.DEVNULL, capture_output=True,
                              text=True, env=env, check=False, errors="replace")
    except OSError as exc:
        raise PrismaOpsError("cannot run %s: %s" % (argv[0], exc.strerror or exc), code="tool_missing")
    finally:
        if fd is not None:
            os.close(fd)
    if proc.returncode != 0:
        raise PrismaOpsError("pg_restore cannot read %s (exit %d): %s; nothing was changed" % (
            path, proc.returncode, first_lines(scrub(proc.stderr, secrets))), code="pg_restore_failed",
            cmd=[scrub(a, secrets) for a in argv])
    return dump_schemas(proc.stdout.splitlines()), False


def _plan_text(chosen: dict, database: str, target: str, plan: list, pre_restore_backup: str | None) -> list:
    steps = ["verify %s against its manifest (sha256 %s)" % (chosen["path"], chosen["sha256"])]
    if pre_restore_backup:
        steps.append("the current state is in %s" % pre_restore_backup)
    steps.append("take Prisma's advisory lock %d (fail if a deploy holds it)" % PRISMA_LOCK_KEY)
    for schema in plan:
        if schema["exists"] and schema["recreate"]:
            steps.append("drop schema %s with everything in it and recreate it (owner %s)" % (schema["name"],
                                                                                              schema["owner"]))
        elif schema["exists"]:
            steps.append("drop schema %s with everything in it (the backup recreates it)" % schema["name"])
        else:
            steps.append("create schema %s" % schema["name"])
    steps.append("restore the %s backup into database %s (%s), all in one transaction" % (
        chosen["format"], database, target))
    steps.append("check _prisma_migrations against the %d row(s) of the manifest"
                 % len(chosen["manifest"]["prisma_migrations"]["rows"]))
    return steps


def already_restored(trusted, name: str, chosen: dict, database: str, target: str, conn) -> dict | None:
    """The record of this backup's last restore when it is still in place: same backup bytes, same database and
    server, and nothing written in the database since (backup.unchanged_since: that keeps it in place when only
    autovacuum's ANALYZE of a shared catalog, or another database, moved the server's position). None otherwise."""
    record = trusted.read_json(name + RESTORED_SUFFIX)
    if not record or record.get("tool") != TOOL or record.get("file") != name:
        return None
    if (record.get("sha256"), record.get("database"), record.get("server")) != (chosen["sha256"], database, target):
        return None
    return record if unchanged_since(record.get("state"), conn) else None


def record_restore(trusted, name: str, chosen: dict, database: str, target: str, conn, notes: list) -> None:
    """ANALYZE (the statistics the restore left stale, so autovacuum has less to write), then record the backup's
    sha256 and the database's state (database_state) in <backup>.restored.json beside it."""
    with conn.cursor() as cur:
        cur.execute("ANALYZE")
    state = database_state(conn)
    if state is None:
        notes.append("a table of %s is not readable by this user, so a later run cannot prove the restore is still in "
                     "place: running it again restores again" % database)
        return
    record = {"tool": TOOL, "file": name, "sha256": chosen["sha256"], "database": database, "server": target,
              "state": state, "position": state["position"],
              "restored_at": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()}
    try:
        trusted.write_json(name + RESTORED_SUFFIX, record)
    except OSError as exc:
        notes.append("could not record the restore in %s (%s): running it again restores again"
                     % (trusted.join(name + RESTORED_SUFFIX), exc.strerror or exc))


def _check_psql(tools: dict, opts: RestoreOptions) -> None:
    """A plain restore needs psql's \\restrict: refuse an older host psql before anything runs."""
    if opts.container:
        return  # checked by running it: an older psql fails on the first line, inside the transaction
    version = tool_version(tools["psql"])[0]
    if not has_restrict(version):
        raise PrismaOpsError("%s is PostgreSQL %s, without \\restrict (CVE-2025-8714), so a plain SQL backup could run "
                             "shell commands through psql meta-commands: upgrade the PostgreSQL client to 17.6, 16.10, "
                             "15.14, 14.19 or 13.22 or later, or restore a custom-format backup; nothing was changed"
                             % (tools["psql"], ".".join(map(str, version))), code="unsupported")


def run_restore(spec: ConnectionSpec, opts: RestoreOptions, check_mode: bool = False) -> dict:
    """Restore (or, in check mode, plan restoring) a verified backup. Returns the result; raises PrismaOpsError."""
    secrets = list(spec.secrets)
    if not check_mode:
        # Before connecting: the name the connection options give must be confirmed.
        problem = confirm_error(opts.confirm, expected_database(spec), spec.target)
        if problem:
            raise problem
    conn = connect(spec, application_name=APPLICATION_NAME, autocommit=True)
    passfile = None
    trusted = None
    try:
        info = server_info(conn)
        database = info["database"]
        target = "%s:%s" % (spec.host or "local socket", spec.port or 5432)
        notes = []
        if not check_mode:
            problem = confirm_error(opts.confirm, database, spec.target)
            if problem:
                raise problem
        elif opts.confirm != database:
            notes.append("a real run needs confirm=%s (restore_confirm=%s)" % (database, database))
        chosen, skipped = pick_backup(opts, database)
        notes += skipped
        fmt = chosen["format"]
        manifest = chosen["manifest"]
        trusted, name = open_backup(chosen["path"])
        if opts.container and fmt == "directory":
            raise PrismaOpsError("a directory backup cannot be streamed into container %s: restore it with this "
                                 "host's PostgreSQL client (leave container unset), or take a custom-format backup"
                                 % opts.container, code="unsupported")
        if opts.pre_restore_backup:
            pre = verify_backup(opts.pre_restore_backup)
            if pre["manifest"].get("database") != database:
                raise PrismaOpsError("pre_restore_backup %s is a backup of %s, not of %s" % (
                    opts.pre_restore_backup, pre["manifest"].get("database"), database), code="wrong_database")
            if os.path.realpath(pre["path"]) == os.path.realpath(chosen["path"]):
                raise PrismaOpsError("pre_restore_backup is the backup being restored (%s): it must be a fresh backup "
                                     "of the current state" % chosen["path"], code="bad_input")
        schema = (manifest["prisma_migrations"].get("schema") or spec.schema)
        before = history_for_manifest(conn, schema)
        expected = manifest["prisma_migrations"]
        result = {
            "changed": True, "path": chosen["path"], "manifest": chosen["manifest_path"], "format": fmt,
            "database": database, "server": target, "verified": True, "sha256": chosen["sha256"],
            "backup_finished_at": manifest.get("finished_at"), "pre_restore_backup": opts.pre_restore_backup,
            "history_matches": None, "notes": notes, "container": opts.container, "already_restored": False,
            "diff": {"before_header": "%s _prisma_migrations now" % database,
                     "after_header": "%s _prisma_migrations in %s" % (database, os.path.basename(chosen["path"])),
                     "before": history_lines(before), "after": history_lines(expected)},
        }
        done = already_restored(trusted, name, chosen, database, target, conn)
        if done and not compare_history(expected, before):
            notes.append("%s was restored into %s at %s and nothing was written since (transaction position %s): it "
                         "is still in place, nothing to do" % (chosen["path"], database, done.get("restored_at"),
                                                               done["position"]["xmax"]))
            result.update(changed=False, already_restored=True, history_matches=True, schemas=[],
                          plan=["nothing: %s is already in place" % chosen["path"]],
                          restored_at=done.get("restored_at"))
            result["diff"]["after"] = result["diff"]["before"]
            return result
        if opts.container:
            tools = container_tools()
        else:
            tools = find_tools(None, server_major(info["server_version_num"]), info["server_version"])
            for tool in ("pg_restore", "psql"):
                if not tools.get(tool):
                    raise PrismaOpsError("%s is not installed beside %s or on PATH: install the PostgreSQL client"
                                         % (tool, tools["pg_dump"]), code="tool_missing")
        if fmt == "plain":
            _check_psql(tools, opts)
        # The password: an in-memory passfile on this host (backup.Passfile), or PGPASSWORD in the container CLI's
        # environment, passed by name.
        passfile = Passfile(None if opts.container else spec.password)
        env = passfile.environment()
        if opts.container:
            env.pop("PGPASSWORD", None)
            if spec.password:
                passfile_line(spec.password)  # the same refusal of line breaks as the host path
                env["PGPASSWORD"] = spec.password
        (referenced, created), own_txn = _scan(trusted, name, fmt, opts, tools, env, secrets)
        if own_txn:
            raise PrismaOpsError("the plain dump %s has its own BEGIN/COMMIT (large objects), which would commit half a "
                                 "restore: restore a custom-format backup instead" % chosen["path"],
                                 code="unsupported")
        plan = schema_plan(conn, referenced, created, schema)
        result.update(schemas=[s["name"] for s in plan],
                      plan=_plan_text(chosen, database, target, plan, opts.pre_restore_backup))
        if check_mode:
            result["history_matches"] = not compare_history(expected, before)  # already as in the backup?
            return result
        preamble = preamble_sql(plan, opts.lock_timeout, begin=fmt != "plain")
        stages = []
        if fmt != "plain":
            stages.append(render_argv(opts, tools, chosen["path"]))
        stages.append(psql_argv(opts, tools, spec, fmt, chosen["path"], preamble))
        # The bytes just verified, through the same trusted descriptor kind: never reopened by path.
        source = trusted.open(name) if fmt != "directory" else None
        handle = os.fdopen(source, "rb") if source is not None else None
        try:
            stdin = handle.fileno() if fmt == "custom" else None
            if fmt == "plain":
                stdin = plain_script(handle, os.urandom(24).hex())
            clock = time.monotonic()
            outcomes = run_pipeline(stages, stdin, env, secrets, passfile.pass_fds)
            duration = round(time.monotonic() - clock, 3)
        finally:
            if handle is not None:
                handle.close()
        # psql's error first (it says what the database refused), then the renderer's.
        names = (["pg_restore"] if fmt != "plain" else []) + ["psql"]
        for tool, (argv, rc, stderr) in reversed(list(zip(names, outcomes))):
            if rc != 0:
                hint = ""
                if "lock timeout" in stderr:
                    hint = " Another session holds a lock on the schema: stop the app (restore_service_name) first."
                if fmt == "plain" and any(m in stderr for m in META_REFUSED):
                    raise PrismaOpsError(
                        "the plain dump %s holds a psql meta-command (a backslash command such as \\! that would run on "
                        "this host), which pg_dump never writes: psql refused it (\\restrict) and the restore's "
                        "transaction rolled back, so nothing was changed. Restore another backup, or inspect this file: "
                        "%s" % (chosen["path"], first_lines(stderr)), code="meta_command_refused",
                        stderr=stderr[-STDERR_LIMIT:], rc=rc)
                if fmt == "plain" and "invalid command \\restrict" in stderr:
                    hint = (" The psql in %s has no \\restrict (CVE-2025-8714): upgrade its PostgreSQL client to "
                            "17.6, 16.10, 15.14, 14.19 or 13.22 or later, or restore a custom-format backup."
                            % (opts.container or "this host"))
                raise PrismaOpsError("%s failed (exit %d): %s; the restore ran in one transaction, so nothing was "
                                     "changed.%s" % (tool, rc, first_lines(stderr), hint), code="restore_failed",
                                     stderr=stderr[-STDERR_LIMIT:], cmd=[scrub(a, secrets) for a in argv], rc=rc)
        after = history_for_manifest(conn, schema)
        problems = compare_history(expected, after)
        result.update(duration=duration, history_matches=not problems,
                      restored_at=datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat())
        if problems:
            raise PrismaOpsError("the restore of %s into %s committed, but _prisma_migrations does not match the "
                                 "manifest: %s. The state before the restore is in %s" % (
                                     chosen["path"], database, "; ".join(problems[:5]),
                                     opts.pre_restore_backup or "no pre-restore backup"),
                                 code="history_mismatch", changed=True, path=chosen["path"], problems=problems)
        record_restore(trusted, name, chosen, database, target, conn, notes)
        return result
    finally:
        conn.close()
        if passfile is not None:
            passfile.close()
        if trusted is not None:
            trusted.close()
