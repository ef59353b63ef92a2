# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_backup's logic: a verified, atomic, private pg_dump with the app's own credentials.

Plain Python (no Ansible imports) so unit tests call it directly. Every external program runs
from an argument list, never a shell. The password reaches pg_dump through a 0600 PGPASSFILE
in a private temporary directory, so neither its argv nor its environment holds it.

The dump is written to a hidden temporary name in the destination directory, verified
(pg_restore --list, or the plain format's completion marker), fsynced, then renamed to
<prefix>-<database>-<UTC timestamp>.<ext> beside a JSON manifest. Any failure removes the
temporary file, so a final name always means a complete, verified dump.
"""

from __future__ import annotations

import datetime
import fcntl
import glob
import grp
import hashlib
import json
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from ansible_collections.prisma_ops.migrate.plugins.module_utils.connection import (
    ConnectionSpec, connect, scrub, server_info,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.container import (
    DEFAULT_CONTAINER_EXEC, check_container_args, container_argv,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError
from ansible_collections.prisma_ops.migrate.plugins.module_utils.history import LOG_LIMIT, read_history

TOOL = "prisma_ops.migrate.pg_backup"
MANIFEST_VERSION = 1
APPLICATION_NAME = "prisma_ops.migrate/pg_backup"
# format -> (file extension, pg_dump --format letter)
FORMATS = {"custom": ("dump", "c"), "plain": ("sql", "p"), "directory": ("dir", "d")}
EXT_TO_FORMAT = {ext: fmt for fmt, (ext, letter) in FORMATS.items()}
MANIFEST_SUFFIX = ".manifest.json"
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
PLAIN_COMPLETE_MARKER = b"-- PostgreSQL database dump complete"
PLAIN_TAIL_BYTES = 64 * 1024
PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DURATION_RE = re.compile(r"(\d+)\s*([smhdw])")
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
PG_LIB_GLOB = "/usr/lib/postgresql/*/bin/pg_dump"
VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
STDERR_LIMIT = 4000
HASH_CHUNK = 1024 * 1024
# Wrong clocks happen: a manifest from the "future" by more than this is never reused.
CLOCK_SKEW = 60


# ---------------------------------------------------------------------------------------------
# Inputs


def parse_duration(value, option: str) -> int | None:
    """'2h', '90m', '1d12h', '1w', or a number of seconds -> seconds; None/'' -> None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise PrismaOpsError("%s must be a duration such as 30m, 2h, 7d or 1w, not %r" % (option, value))
    if isinstance(value, (int, float)):
        seconds = int(value)
    else:
        text = str(value).strip().lower()
        if text.isdigit():
            seconds = int(text)
        else:
            compact = text.replace(" ", "")
            parts = DURATION_RE.findall(compact)
            if not parts or "".join(n + u for n, u in parts) != compact:
                raise PrismaOpsError("%s=%r is not a duration: use a number with a unit, s, m, h, d or w (for "
                                     "example 30m, 2h, 7d, 1d12h), or a number of seconds" % (option, value))
            seconds = sum(int(n) * DURATION_UNITS[u] for n, u in parts)
    if seconds < 0:
        raise PrismaOpsError("%s must not be negative" % option)
    return seconds


@dataclass
class BackupOptions:
    backup_dir: str
    prefix: str = "prisma"
    format: str = "custom"
    jobs: int | None = None
    compress: int | None = None
    schema_only: bool = False
    tables: list = field(default_factory=list)
    exclude_tables: list = field(default_factory=list)
    reuse_within: int | None = None
    keep_last: int | None = None
    max_age: int | None = None
    owner: str | None = None
    group: str | None = None
    pg_dump_path: str | None = None
    # pg_dump inside a container: `<container_exec> -i <container> pg_dump ...`, the dump streamed out on stdout.
    container: str | None = None
    container_exec: list = field(default_factory=lambda: list(DEFAULT_CONTAINER_EXEC))

    @classmethod
    def from_params(cls, params: dict) -> "BackupOptions":
        """Validate the module options; one clear error per bad input, before anything runs."""
        backup_dir = params.get("backup_dir")
        if not backup_dir or not str(backup_dir).strip():
            raise PrismaOpsError("backup_dir is empty: give the directory the backups go to, e.g. /opt/APP/shared/backups")
        backup_dir = os.path.abspath(os.path.expanduser(str(backup_dir)))
        prefix = params.get("prefix") or "prisma"
        if not PREFIX_RE.match(prefix):
            raise PrismaOpsError("prefix %r is not usable in a file name: use letters, digits, '.', '_' and '-' (at "
                                 "most 64, starting with a letter or digit)" % prefix)
        fmt = params.get("format") or "custom"
        if fmt not in FORMATS:
            raise PrismaOpsError("format must be one of %s, not %r" % (", ".join(FORMATS), fmt))
        jobs = params.get("jobs")
        if jobs is not None:
            if jobs < 1:
                raise PrismaOpsError("jobs must be 1 or more")
            if fmt != "directory" and jobs > 1:
                raise PrismaOpsError("jobs=%d needs format=directory: pg_dump dumps in parallel only into a directory"
                                     % jobs)
        compress = params.get("compress")
        if compress is not None:
            if not 0 <= compress <= 9:
                raise PrismaOpsError("compress must be a level from 0 (none) to 9, not %d" % compress)
            if fmt == "plain" and compress > 0:
                raise PrismaOpsError("format=plain is uncompressed SQL (its completion marker is what verifies it): "
                                     "use format=custom or directory for a compressed backup")
        keep_last = params.get("keep_last")
        if keep_last is not None and keep_last < 1:
            raise PrismaOpsError("keep_last must be 1 or more (the backup just taken is always kept)")
        max_age = parse_duration(params.get("max_age"), "max_age")
        if max_age is not None and max_age < 1:
            raise PrismaOpsError("max_age must be longer than 0 seconds")
        for option in ("tables", "exclude_tables"):
            for pattern in params.get(option) or []:
                if not pattern or not str(pattern).strip() or "\x00" in str(pattern):
                    raise PrismaOpsError("%s has an empty table pattern" % option)
        container = params.get("container") or None
        container_exec = list(params.get("container_exec") or DEFAULT_CONTAINER_EXEC)
        if container:
            check_container_args(container, container_exec)
            if fmt == "directory":
                raise PrismaOpsError("format=directory cannot be streamed out of container %s: use format=custom (or "
                                     "plain) with container" % container)
        return cls(backup_dir=backup_dir, prefix=prefix, format=fmt, jobs=jobs, compress=compress,
                   schema_only=bool(params.get("schema_only")), tables=list(params.get("tables") or []),
                   exclude_tables=list(params.get("exclude_tables") or []),
                   reuse_within=parse_duration(params.get("reuse_within"), "reuse_within") or None,
                   keep_last=keep_last, max_age=max_age, owner=params.get("owner"), group=params.get("group"),
                   pg_dump_path=params.get("pg_dump_path"), container=container, container_exec=container_exec)

    @property
    def extension(self) -> str:
        return FORMATS[self.format][0]

    def selection(self) -> dict:
        """What the dump holds; a backup is reused only when this matches."""
        return {"format": self.format, "schema_only": self.schema_only, "tables": sorted(self.tables),
                "exclude_tables": sorted(self.exclude_tables)}


# ---------------------------------------------------------------------------------------------
# Names


def safe_name(database: str) -> str:
    """The database name as it appears in a file name: anything odd becomes '_'."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", database).lstrip(".")
    return name or "_"


def backup_name(prefix: str, database: str, when: datetime.datetime, extension: str) -> str:
    return "%s-%s-%s.%s" % (prefix, safe_name(database), when.strftime(TIMESTAMP_FORMAT), extension)


def name_pattern(prefix: str, database: str):
    """Only names this module makes for this prefix and database match (temporary names never do)."""
    return re.compile(r"^%s-%s-(\d{8}T\d{6}Z)\.(%s)$" % (
        re.escape(prefix), re.escape(safe_name(database)), "|".join(EXT_TO_FORMAT)))


def next_free_name(backup_dir: str, prefix: str, database: str, when: datetime.datetime, extension: str) -> str:
    """A name whose timestamp no backup of this prefix and database uses yet, in any format: two backups
    within one second get consecutive timestamps, so names sort in the order the backups were taken."""
    for offset in range(3600):
        stamp = when + datetime.timedelta(seconds=offset)
        taken = False
        for ext in EXT_TO_FORMAT:
            path = os.path.join(backup_dir, backup_name(prefix, database, stamp, ext))
            if os.path.lexists(path) or os.path.lexists(path + MANIFEST_SUFFIX):
                taken = True
                break
        if not taken:
            return backup_name(prefix, database, stamp, extension)
    raise PrismaOpsError("no free backup name in %s for %s: clean up the directory" % (backup_dir, database))


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def parse_time(text) -> datetime.datetime | None:
    try:
        value = datetime.datetime.fromisoformat(str(text))
    except (TypeError, ValueError):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value


# ---------------------------------------------------------------------------------------------
# pg_dump selection


def parse_tool_version(text: str) -> tuple | None:
    """'pg_dump (PostgreSQL) 15.18 (Debian ...)' -> (15, 18); 9.6.24 -> (9, 6)."""
    match = VERSION_RE.search(text or "")
    if not match:
        return None
    return (int(match.group(1)), int(match.group(2) or 0))


def major_of(version: tuple) -> tuple:
    """The major version as PostgreSQL counts it: (15,) from 10 on, (9, 6) before."""
    return (version[0],) if version[0] >= 10 else (version[0], version[1])


def server_major(version_num: int) -> tuple:
    return (version_num // 10000,) if version_num >= 100000 else (version_num // 10000, version_num // 100 % 100)


def show_major(major: tuple) -> str:
    return ".".join(str(p) for p in major)


def tool_version(path: str) -> tuple:
    """(version tuple, version line) of a PostgreSQL client program, or a clear error."""
    if not os.path.exists(path):
        raise PrismaOpsError("pg_dump_path %s does not exist on this host: install the PostgreSQL client "
                             "(postgresql-client on Debian/Ubuntu) or point pg_dump_path at pg_dump" % path)
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise PrismaOpsError("%s is not an executable program: point pg_dump_path at the pg_dump binary" % path)
    try:
        proc = subprocess.run([path, "--version"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=30, check=False, env=_c_locale(dict(os.environ)))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PrismaOpsError("cannot run %s --version: %s" % (path, exc))
    line = (proc.stdout or proc.stderr).strip().splitlines()[0] if (proc.stdout or proc.stderr).strip() else ""
    version = parse_tool_version(line)
    if proc.returncode != 0 or version is None:
        raise PrismaOpsError("%s --version did not report a PostgreSQL version (exit %s: %s): is it pg_dump?"
                             % (path, proc.returncode, line[:200] or "no output"))
    return version, line


def candidate_paths() -> list:
    """pg_dump binaries on this host: Debian's versioned ones, then the one on PATH."""
    paths = sorted(glob.glob(PG_LIB_GLOB), key=_dir_version, reverse=True)
    on_path = shutil.which("pg_dump")
    if on_path and os.path.realpath(on_path) not in {os.path.realpath(p) for p in paths}:
        paths.append(on_path)
    return paths


def _dir_version(path: str) -> tuple:
    match = re.search(r"/postgresql/(\d+)(?:\.(\d+))?/bin/", path)
    return (int(match.group(1)), int(match.group(2) or 0)) if match else (0, 0)


def choose_pg_dump(candidates: list, server: tuple) -> tuple | None:
    """From [(path, version)], the pg_dump to use for a server of major version `server`.

    The same major version is preferred; otherwise the oldest newer one (pg_dump dumps older servers
    but refuses newer ones). None when every candidate is older than the server.
    """
    same = [c for c in candidates if major_of(c[1]) == server]
    if same:
        return max(same, key=lambda c: c[1])
    newer = [c for c in candidates if major_of(c[1]) > server]
    if newer:
        return min(newer, key=lambda c: c[1])
    return None


def mismatch_message(server_version: str, server: tuple, found: list) -> str:
    have = ", ".join("%s (%s)" % (path, ".".join(map(str, version))) for path, version in found) or "none"
    want = show_major(server)
    return ("the server runs PostgreSQL %s and pg_dump refuses to dump a server newer than itself; pg_dump found: %s. "
            "Install the PostgreSQL %s client (Debian/Ubuntu: apt-get install postgresql-client-%s, from the PGDG "
            "repository apt.postgresql.org if the distribution lacks it) or point pg_dump_path at pg_dump %s or newer"
            % (server_version, have, want, want, want))


def find_tools(pg_dump_path: str | None, server: tuple, server_version: str) -> dict:
    """pg_dump (and pg_restore/psql beside it) able to dump this server, or one clear error."""
    if pg_dump_path:
        version, line = tool_version(pg_dump_path)
        if major_of(version) < server:
            raise PrismaOpsError(mismatch_message(server_version, server, [(pg_dump_path, version)]),
                                 code="version_mismatch")
        chosen = (pg_dump_path, version, line)
    else:
        found = []
        for path in candidate_paths():
            try:
                version, line = tool_version(path)
            except PrismaOpsError:
                continue  # a broken wrapper or leftover binary is not a reason to fail when another works
            found.append((path, version, line))
        if not found:
            raise PrismaOpsError("pg_dump is not installed on this host (looked in %s and PATH): install the "
                                 "PostgreSQL %s client (Debian/Ubuntu: apt-get install postgresql-client-%s) or set "
                                 "pg_dump_path" % (PG_LIB_GLOB.replace("/pg_dump", ""), show_major(server),
                                                   show_major(server)), code="pg_dump_missing")
        best = choose_pg_dump([(p, v) for p, v, x in found], server)
        if best is None:
            raise PrismaOpsError(mismatch_message(server_version, server, [(p, v) for p, v, x in found]),
                                 code="version_mismatch")
        chosen = next(c for c in found if c[0] == best[0])
    path, version, line = chosen
    bindir = os.path.dirname(path)

    def beside(name: str) -> str | None:
        candidate = os.path.join(bindir, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
        return shutil.which(name)

    return {"pg_dump": path, "version": version, "version_line": line, "pg_restore": beside("pg_restore"),
            "psql": beside("psql")}


def in_container(tools: dict, env_names: list, stdin: bool = False) -> list:
    """The argv prefix that runs a client program in the database's container; [] on the host itself."""
    if not tools.get("container"):
        return []
    return container_argv(tools["container_exec"], tools["container"], env_names, stdin=stdin)


def container_tools(opts: BackupOptions, server: tuple, server_version: str) -> dict:
    """pg_dump (and pg_restore, psql) inside opts.container, able to dump this server, or one clear error."""
    pg_dump = opts.pg_dump_path or "pg_dump"
    argv = container_argv(opts.container_exec, opts.container, []) + [pg_dump, "--version"]
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                              check=False, env=_c_locale(dict(os.environ)), errors="replace")
    except OSError as exc:
        raise PrismaOpsError("cannot run %s: %s; install the container CLI on this host or set container_exec"
                             % (argv[0], exc.strerror or exc), code="pg_dump_missing")
    except subprocess.TimeoutExpired:
        raise PrismaOpsError("%s did not answer within 60 s: is the container engine running?" % " ".join(argv),
                             code="pg_dump_missing")
    line = (proc.stdout or "").strip().splitlines()[0] if (proc.stdout or "").strip() else ""
    version = parse_tool_version(line)
    if proc.returncode != 0 or version is None:
        raise PrismaOpsError("cannot run %s in container %s (exit %s: %s): is the container running, and does it have "
                             "the PostgreSQL client?" % (pg_dump, opts.container, proc.returncode,
                                                         first_lines(proc.stderr or line)), code="pg_dump_missing")
    if major_of(version) < server:
        raise PrismaOpsError(mismatch_message(server_version, server, [("%s in %s" % (pg_dump, opts.container), version)]),
                             code="version_mismatch")
    bindir = os.path.dirname(pg_dump)
    return {"pg_dump": pg_dump, "version": version, "version_line": "%s (in container %s)" % (line, opts.container),
            "pg_restore": os.path.join(bindir, "pg_restore") if bindir else "pg_restore",
            "psql": os.path.join(bindir, "psql") if bindir else "psql",
            "container": opts.container, "container_exec": list(opts.container_exec)}


# ---------------------------------------------------------------------------------------------
# Connection inputs for pg_dump, without the secret


def conninfo_quote(value) -> str:
    text = str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def pg_dump_conninfo(spec: ConnectionSpec) -> str:
    """A libpq connection string for --dbname with everything but the password."""
    kwargs = spec.libpq_kwargs(APPLICATION_NAME)
    kwargs.pop("password", None)
    if kwargs.pop("sslpassword", None):
        raise PrismaOpsError("the connection uses sslpassword, which pg_dump could only get on its command line: use "
                             "a client key without a passphrase, readable only by this user")
    return " ".join("%s=%s" % (key, conninfo_quote(value)) for key, value in sorted(kwargs.items()))


def passfile_line(password: str) -> str:
    """A .pgpass line matching any host, port, database and user; ':' and '\\' escaped as libpq wants."""
    if "\n" in password or "\r" in password:
        raise PrismaOpsError("the password contains a line break, which a libpq password file cannot hold")
    return "*:*:*:*:%s\n" % password.replace("\\", "\\\\").replace(":", "\\:")


def child_environment(passfile: str | None) -> dict:
    env = _c_locale(dict(os.environ))
    if passfile:
        env.pop("PGPASSWORD", None)  # it would win over the passfile
        env["PGPASSFILE"] = passfile
    for name in ("PGSERVICE", "PGSERVICEFILE", "PGOPTIONS"):
        env.pop(name, None)  # the connection comes from the module's options only
    return env


def _c_locale(env: dict) -> dict:
    env["LC_MESSAGES"] = "C"  # pg_dump's own English message, whatever the host's locale
    env.pop("LANGUAGE", None)
    return env


def restore_command(fmt: str, path: str, tools: dict, spec: ConnectionSpec, database: str, jobs: int | None) -> str:
    """The exact command that restores this backup into `database`; the password comes from ~/.pgpass or a prompt."""
    target = []
    if spec.host:
        target.append("--host=%s" % spec.host)
    target.append("--port=%s" % (spec.port or 5432))
    if spec.user:
        target.append("--username=%s" % spec.user)
    extra = {k: v for k, v in spec.libpq_params.items() if k not in ("sslpassword",) and v not in (None, "")}
    if extra:
        conninfo = " ".join("%s=%s" % (k, conninfo_quote(v)) for k, v in sorted(dict(extra, dbname=database).items()))
        target.append("--dbname=%s" % conninfo)
    else:
        target.append("--dbname=%s" % database)
    # In a container the backup goes in on stdin; PGPASSWORD, when the caller sets it, is passed on by name.
    prefix = in_container(tools, ["PGPASSWORD"], stdin=True)
    source = [] if prefix else [path]
    if fmt == "plain":
        argv = [tools.get("psql") or "psql"] + target + ["--set=ON_ERROR_STOP=1", "--single-transaction"]
        argv += [] if prefix else ["--file=%s" % path]
    else:
        argv = [tools.get("pg_restore") or "pg_restore"] + target + ["--clean", "--if-exists", "--exit-on-error"]
        argv += ["--jobs=%d" % jobs] if jobs and jobs > 1 else ["--single-transaction"]
        argv += source
    command = " ".join(shlex.quote(a) for a in prefix + argv)
    return command + " < %s" % shlex.quote(path) if prefix else command


def pg_dump_argv(tools: dict, opts: BackupOptions, spec: ConnectionSpec, output: str | None,
                 snapshot: str | None) -> list:
    """pg_dump's arguments; with no `output` the dump goes to stdout (streamed out of a container)."""
    argv = [tools["pg_dump"], "--format=%s" % FORMATS[opts.format][1]]
    if output:
        argv.append("--file=%s" % output)
    argv += ["--no-password", "--dbname=%s" % pg_dump_conninfo(spec)]
    if opts.compress is not None:
        argv.append("--compress=%d" % opts.compress)
    if opts.jobs and opts.format == "directory":
        argv.append("--jobs=%d" % opts.jobs)
    if opts.schema_only:
        argv.append("--schema-only")
    argv += ["--table=%s" % t for t in opts.tables]
    argv += ["--exclude-table=%s" % t for t in opts.exclude_tables]
    if snapshot:
        argv.append("--snapshot=%s" % snapshot)
    return argv


# ---------------------------------------------------------------------------------------------
# Files


def resolve_owner(owner: str | None, group: str | None) -> tuple:
    """(uid, gid), -1 where not given; names or numeric ids."""
    uid = gid = -1
    if owner:
        try:
            uid = int(owner) if str(owner).isdigit() else pwd.getpwnam(owner).pw_uid
        except KeyError:
            raise PrismaOpsError("owner %r is not a user on this host" % owner)
    if group:
        try:
            gid = int(group) if str(group).isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise PrismaOpsError("group %r is not a group on this host" % group)
    return uid, gid


def _whoami() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return "uid %d" % os.geteuid()


def check_backup_dir(backup_dir: str) -> dict:
    """Whether the directory exists and this user can write there; raises when it cannot. Writes nothing."""
    if os.path.lexists(backup_dir) and not os.path.isdir(backup_dir):
        raise PrismaOpsError("backup_dir %s exists and is not a directory" % backup_dir)
    if os.path.isdir(backup_dir):
        if not os.access(backup_dir, os.W_OK | os.X_OK):
            raise PrismaOpsError("backup_dir %s is not writable by %s: run the task with become, or choose a "
                                 "directory this user owns" % (backup_dir, _whoami()), code="unwritable")
        return {"exists": True}
    parent = os.path.dirname(backup_dir.rstrip("/")) or "/"
    while not os.path.isdir(parent):
        if os.path.lexists(parent):
            raise PrismaOpsError("cannot create backup_dir %s: %s is not a directory" % (backup_dir, parent))
        parent = os.path.dirname(parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PrismaOpsError("cannot create backup_dir %s: %s is not writable by %s: run the task with become, or "
                             "create the directory first" % (backup_dir, parent, _whoami()), code="unwritable")
    return {"exists": False}


def ensure_backup_dir(backup_dir: str, uid: int, gid: int) -> bool:
    """Create the directory (0700) or bring it to 0700 and the owner/group asked for; True when changed."""
    changed = False
    try:
        if not os.path.isdir(backup_dir):
            os.makedirs(backup_dir, mode=0o700)
            changed = True
        st = os.stat(backup_dir)
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.chmod(backup_dir, 0o700)
            changed = True
        if (uid != -1 and st.st_uid != uid) or (gid != -1 and st.st_gid != gid):
            os.chown(backup_dir, uid, gid)
            changed = True
    except OSError as exc:
        raise PrismaOpsError("cannot prepare backup_dir %s: %s" % (backup_dir, exc.strerror or exc), code="unwritable")
    return changed


def _walk_files(path: str) -> list:
    """Every regular file of a backup (the file itself, or a directory's files), sorted by relative name."""
    if not os.path.isdir(path):
        return [path]
    found = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(filenames):
            found.append(os.path.join(dirpath, name))
    return sorted(found, key=lambda p: os.path.relpath(p, path))


def _hash_file(path: str, do_fsync: bool) -> tuple:
    digest = hashlib.sha256()
    size = 0
    fd = os.open(path, os.O_RDONLY)
    try:
        with os.fdopen(os.dup(fd), "rb", buffering=0) as handle:
            while True:
                chunk = handle.read(HASH_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                digest.update(chunk)
        if do_fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    return digest.hexdigest(), size


def checksum(path: str, do_fsync: bool = False) -> tuple:
    """(sha256, size). A directory's sha256 is that of its `sha256sum`-style listing (hash, two spaces, name)."""
    if not os.path.isdir(path):
        return _hash_file(path, do_fsync)
    listing = []
    total = 0
    for file_path in _walk_files(path):
        digest, size = _hash_file(file_path, do_fsync)
        total += size
        listing.append("%s  %s\n" % (digest, os.path.relpath(file_path, path)))
    return hashlib.sha256("".join(listing).encode("utf-8")).hexdigest(), total


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def set_private(path: str, uid: int, gid: int) -> None:
    """Files 0600, directories 0700, owner/group as asked, for a backup or a manifest."""
    targets = [path]
    if os.path.isdir(path):
        for dirpath, dirnames, filenames in os.walk(path):
            targets += [os.path.join(dirpath, n) for n in dirnames + filenames]
    for target in targets:
        os.chmod(target, 0o700 if os.path.isdir(target) else 0o600)
        if uid != -1 or gid != -1:
            os.chown(target, uid, gid)


def remove_path(path: str) -> None:
    """Remove a file or a backup directory; never follows a symlink."""
    if os.path.islink(path) or not os.path.isdir(path):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    else:
        shutil.rmtree(path, ignore_errors=True)


def verify_dump(fmt: str, path: str, tools: dict, env: dict, secrets: list) -> dict:
    """Prove the dump is complete: pg_restore reads its table of contents, or plain SQL ends with the marker."""
    if fmt == "plain":
        with open(path, "rb") as handle:
            head = handle.read(256)
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - PLAIN_TAIL_BYTES))
            tail = handle.read()
        if not head.lstrip().startswith(b"--") or PLAIN_COMPLETE_MARKER not in tail:
            raise PrismaOpsError("pg_dump exited 0 but the plain dump lacks its completion marker (%r): it is "
                                 "incomplete" % PLAIN_COMPLETE_MARKER.decode(), code="verify_failed")
        return {"method": "completion marker"}
    if not tools.get("pg_restore"):
        raise PrismaOpsError("pg_restore is not installed beside %s or on PATH, so the dump cannot be verified: install "
                             "the PostgreSQL client" % tools["pg_dump"], code="pg_restore_missing")
    prefix = in_container(tools, [], stdin=True)
    argv = prefix + [tools["pg_restore"], "--list"] + ([] if prefix else [path])
    with open(path if prefix else os.devnull, "rb") as source:
        proc = subprocess.run(argv, stdin=source, capture_output=True, text=True, env=env, check=False,
                              errors="replace")
    if proc.returncode != 0:
        raise PrismaOpsError("pg_dump exited 0 but pg_restore --list cannot read the dump (exit %d): %s"
                             % (proc.returncode, first_lines(scrub(proc.stderr, secrets))), code="verify_failed")
    entries = sum(1 for line in proc.stdout.splitlines() if line and not line.startswith(";"))
    return {"method": "pg_restore --list", "toc_entries": entries}


def first_lines(text: str, count: int = 3) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return " | ".join(lines[:count]) if lines else "no message"


# ---------------------------------------------------------------------------------------------
# Manifests, reuse, retention


def read_manifest(path: str) -> dict | None:
    try:
        with open(path + MANIFEST_SUFFIX, "r", encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("tool") == TOOL else None


def list_backups(backup_dir: str, prefix: str, database: str) -> list:
    """This module's backups of `database` in the directory: its naming pattern AND a manifest of ours naming it."""
    pattern = name_pattern(prefix, database)
    try:
        names = os.listdir(backup_dir)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise PrismaOpsError("cannot list backup_dir %s: %s" % (backup_dir, exc.strerror or exc))
    found = []
    for name in names:
        match = pattern.match(name)
        if not match:
            continue
        path = os.path.join(backup_dir, name)
        if os.path.islink(path):
            continue
        manifest = read_manifest(path)
        if not manifest or manifest.get("database") != database or manifest.get("file") != name:
            continue
        finished = parse_time(manifest.get("finished_at"))
        if finished is None:
            continue
        found.append({"path": path, "name": name, "manifest": manifest, "finished_at": finished})
    found.sort(key=lambda b: (b["finished_at"], b["name"]), reverse=True)  # newest first
    return found


def find_reusable(backups: list, opts: BackupOptions, server: str, now: datetime.datetime, notes: list) -> dict | None:
    """The newest verified backup of the same database, server and selection, younger than reuse_within,
    whose content still matches its manifest's checksum."""
    if not opts.reuse_within:
        return None
    for backup in backups:
        manifest = backup["manifest"]
        age = (now - backup["finished_at"]).total_seconds()
        if age > opts.reuse_within:
            break  # newest first: the rest are older
        if age < -CLOCK_SKEW or not manifest.get("verified") or manifest.get("server") != server:
            continue
        if manifest.get("selection") != opts.selection():
            continue
        if not os.path.exists(backup["path"]):
            continue
        try:
            digest, size = checksum(backup["path"])
        except OSError:
            continue
        if digest != manifest.get("sha256") or size != manifest.get("size"):
            notes.append("%s does not match its manifest's checksum any more: not reused" % backup["path"])
            continue
        return dict(backup, age=age)
    return None


def plan_retention(backups: list, keep: set, keep_last: int | None, max_age: int | None,
                   now: datetime.datetime) -> list:
    """Which of `backups` (newest first) to delete: beyond keep_last, or older than max_age.

    The backups in `keep` (the one just taken or reused) are never deleted and count first towards
    keep_last; the newest others fill the remaining places.
    """
    if keep_last is None and max_age is None:
        return []
    places = None if keep_last is None else keep_last - len(keep)
    doomed = []
    kept = 0
    for backup in backups:
        if backup["path"] in keep:
            continue
        too_old = max_age is not None and (now - backup["finished_at"]).total_seconds() > max_age
        too_many = places is not None and kept >= places
        if too_old or too_many:
            doomed.append(backup)
        else:
            kept += 1
    return doomed


def write_manifest(path: str, manifest: dict, uid: int, gid: int) -> str:
    """Write <path>.manifest.json atomically (temporary name, fsync, rename)."""
    final = path + MANIFEST_SUFFIX
    directory, name = os.path.split(final)
    fd, tmp = tempfile.mkstemp(prefix="." + name + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        set_private(tmp, uid, gid)
        os.rename(tmp, final)
    except BaseException:
        remove_path(tmp)
        raise
    return final


def history_for_manifest(conn, schema: str) -> dict:
    """The _prisma_migrations rows now; a failure to read them is recorded, not fatal to the backup."""
    try:
        history = read_history(conn, schema)
    except PrismaOpsError as exc:
        return {"schema": schema, "table_exists": None, "error": exc.msg, "rows": []}
    rows = []
    for row in history["rows"]:
        rows.append({
            "id": row.id, "migration_name": row.migration_name, "checksum": row.checksum,
            "started_at": _iso(row.started_at), "finished_at": _iso(row.finished_at),
            "rolled_back_at": _iso(row.rolled_back_at), "applied_steps_count": row.applied_steps_count,
            "logs": row.logs[:LOG_LIMIT] if row.logs else row.logs,
        })
    return {"schema": schema, "table_exists": history["table_exists"], "rows": rows}


def _iso(value):
    return value.isoformat() if value is not None else None


def export_snapshot(conn) -> str | None:
    """Export this transaction's snapshot so pg_dump sees exactly the rows the manifest records."""
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_export_snapshot()")
            return cur.fetchone()[0]
    except Exception:  # pylint: disable=broad-except
        # A standby, or a pooler in transaction mode: dump without a shared snapshot.
        conn.rollback()
        return None


# ---------------------------------------------------------------------------------------------
# The whole operation


LOCK_WAIT = 900


def lock_backup_dir(backup_dir: str, wait: float = LOCK_WAIT) -> int:
    """An exclusive flock on the backup directory itself, waited for at most `wait` seconds; its open fd.

    Two runs at once (two operators, cron and a person) must not both dump, nor race for one name: the second
    waits here, then finds the first one's backup and reuses it. The lock dies with the process that holds it,
    so a killed run leaves nothing to clean up, and no lock file is left in the directory."""
    try:
        fd = os.open(backup_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise PrismaOpsError("cannot open backup_dir %s: %s; nothing was changed" % (backup_dir, exc.strerror or exc))
    started = time.monotonic()
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() - started >= wait:
                os.close(fd)
                raise PrismaOpsError("another pg_backup into %s has held its lock for %d s: wait for it to finish, then "
                                     "run again; nothing was changed" % (backup_dir, wait), code="backup_locked")
            time.sleep(0.2)


class _LockedLate(Exception):
    """The backup directory was created (and locked) only now: choose again, under the lock."""


def run_backup(spec: ConnectionSpec, opts: BackupOptions, check_mode: bool = False) -> dict:
    """Take (or reuse) a verified backup; apply retention. Returns the module's result; raises PrismaOpsError."""
    secrets = list(spec.secrets)
    uid, gid = resolve_owner(opts.owner, opts.group)
    dir_state = check_backup_dir(opts.backup_dir)
    notes: list = []
    # One backup at a time per directory, from choosing (reuse, or a new name) to the manifest (lock_backup_dir).
    # A directory that does not exist yet is locked once it is created, and the choice is made again under the lock.
    lock = {"fd": None}
    if not check_mode and dir_state["exists"]:
        lock["fd"] = lock_backup_dir(opts.backup_dir)
    try:
        try:
            return _run_backup_locked(spec, opts, check_mode, secrets, uid, gid, dir_state, notes, lock)
        except _LockedLate:
            return _run_backup_locked(spec, opts, check_mode, secrets, uid, gid, {"exists": True}, notes, lock)
    finally:
        if lock["fd"] is not None:
            os.close(lock["fd"])


def _run_backup_locked(spec, opts, check_mode, secrets, uid, gid, dir_state, notes, lock) -> dict:
    conn = connect(spec, application_name=APPLICATION_NAME, autocommit=False)
    try:
        # One read-only snapshot: server facts, the history rows, and (exported) the dump itself.
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        info = server_info(conn)
        database = info["database"]
        server = "%s:%s" % (spec.host or "local socket", spec.port or 5432)
        now = utcnow()
        backups = list_backups(opts.backup_dir, opts.prefix, database)
        reused = find_reusable(backups, opts, server, now, notes)
        result = {"database": database, "server_version": info["server_version"], "format": opts.format,
                  "backup_dir": opts.backup_dir, "notes": notes}
        if reused:
            manifest = reused["manifest"]
            result.update(path=reused["path"], manifest=reused["path"] + MANIFEST_SUFFIX, size=manifest["size"],
                          sha256=manifest["sha256"], reused=True, age=round(reused["age"], 1),
                          restore_command=manifest.get("restore_command"), duration=manifest.get("duration"),
                          pg_dump_version=manifest.get("pg_dump_version"), changed=False)
            keep = {reused["path"]}
        else:
            server_ver = server_major(info["server_version_num"])
            tools = (container_tools(opts, server_ver, info["server_version"]) if opts.container
                     else find_tools(opts.pg_dump_path, server_ver, info["server_version"]))
            name = next_free_name(opts.backup_dir, opts.prefix, database, now, opts.extension)
            path = os.path.join(opts.backup_dir, name)
            result.update(path=path, manifest=path + MANIFEST_SUFFIX, reused=False, pg_dump_version=tools["version_line"],
                          restore_command=restore_command(opts.format, path, tools, spec, database, opts.jobs),
                          size=None, sha256=None, duration=None, changed=True)
            keep = {path}
            if not check_mode:
                dir_changed = ensure_backup_dir(opts.backup_dir, uid, gid)
                if lock["fd"] is None:
                    lock["fd"] = lock_backup_dir(opts.backup_dir)
                    raise _LockedLate()
                done = dump(conn, spec, opts, tools, path, info, now, secrets, uid, gid)
                result.update(done, dir_changed=dir_changed)
                backups = list_backups(opts.backup_dir, opts.prefix, database)
        if check_mode and not reused:
            # The backup a real run would take counts towards keep_last, as it would after the run.
            backups = [{"path": result["path"], "name": os.path.basename(result["path"]), "finished_at": now}] + backups
        doomed = plan_retention(backups, keep, opts.keep_last, opts.max_age, now)
        result["deleted"] = [b["path"] for b in doomed]
        if doomed:
            result["changed"] = True
            if not check_mode:
                for backup in doomed:
                    remove_path(backup["path"])
                    remove_path(backup["path"] + MANIFEST_SUFFIX)
                fsync_dir(opts.backup_dir)
        if check_mode and not dir_state["exists"]:
            notes.append("backup_dir %s does not exist yet; it would be created (0700)" % opts.backup_dir)
    finally:
        conn.close()
    return result


def dump(conn, spec: ConnectionSpec, opts: BackupOptions, tools: dict, path: str, info: dict,
         started: datetime.datetime, secrets: list, uid: int, gid: int) -> dict:
    """pg_dump to a temporary name, verify, fsync, rename, manifest. Leaves nothing behind on failure."""
    directory, name = os.path.split(path)
    history = history_for_manifest(conn, spec.schema)
    snapshot = export_snapshot(conn)
    private = tempfile.mkdtemp(prefix="prisma-ops-pgpass-")  # 0700, removed below
    # A hidden name that never matches the backup pattern, so retention and reuse ignore it.
    tmp = os.path.join(directory, ".%s.tmp-%s" % (name, os.urandom(4).hex()))
    renamed = False
    try:
        passfile = None
        if spec.password and not tools.get("container"):
            passfile = os.path.join(private, "pgpass")
            fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(passfile_line(spec.password))
        env = child_environment(passfile)
        if opts.format != "directory":
            # Created 0600 first: pg_dump truncates it and the mode stays; the directory is 0700 anyway.
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        if tools.get("container"):
            # A passfile on this host means nothing inside the container: the CLI passes PGPASSWORD on by name.
            if spec.password:
                env["PGPASSWORD"] = spec.password
            prefix = in_container(tools, ["PGPASSWORD"] if spec.password else [])
            argv = prefix + pg_dump_argv(tools, opts, spec, None, snapshot)
        else:
            argv = pg_dump_argv(tools, opts, spec, tmp, snapshot)
        clock = time.monotonic()
        try:
            with open(tmp if tools.get("container") else os.devnull, "wb") as sink:
                proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.PIPE, env=env,
                                      check=False)
            proc.stderr = (proc.stderr or b"").decode("utf-8", "replace")
        except OSError as exc:
            raise PrismaOpsError("cannot run %s: %s" % (tools["pg_dump"], exc.strerror or exc), code="pg_dump_failed")
        dump_seconds = time.monotonic() - clock
        stderr = scrub(proc.stderr or "", secrets)
        if proc.returncode != 0:
            raise PrismaOpsError("pg_dump failed (exit %d): %s; nothing was written to %s" % (
                proc.returncode, first_lines(stderr), directory), code="pg_dump_failed",
                stderr=stderr[-STDERR_LIMIT:], cmd=[scrub(a, secrets) for a in argv], rc=proc.returncode)
        verification = verify_dump(opts.format, tmp, tools, env, secrets)
        set_private(tmp, uid, gid)
        digest, size = checksum(tmp, do_fsync=True)
        if os.path.isdir(tmp):
            fsync_dir(tmp)
        os.rename(tmp, path)
        renamed = True
        finished = utcnow()
        duration = round(time.monotonic() - clock, 3)
        manifest = {
            "tool": TOOL, "manifest_version": MANIFEST_VERSION, "file": name, "format": opts.format,
            "selection": opts.selection(), "compress": opts.compress, "jobs": opts.jobs,
            "database": info["database"], "server": "%s:%s" % (spec.host or "local socket", spec.port or 5432),
            "user": info["user"], "server_version": info["server_version"],
            "server_version_num": info["server_version_num"], "pg_dump_path": tools["pg_dump"],
            "container": tools.get("container"),
            "pg_dump_version": tools["version_line"], "started_at": started.isoformat(),
            "finished_at": finished.isoformat(), "duration": duration, "dump_seconds": round(dump_seconds, 3),
            "size": size, "sha256": digest, "verified": True, "verification": verification, "snapshot": bool(snapshot),
            "restore_command": restore_command(opts.format, path, tools, spec, info["database"], opts.jobs),
            "prisma_migrations": history,
        }
        manifest_path = write_manifest(path, manifest, uid, gid)
        fsync_dir(directory)
    except OSError as exc:
        # Disk full while hashing or writing the manifest, a directory that vanished, ...
        raise PrismaOpsError("backup to %s failed: %s; nothing was left behind" % (directory, exc.strerror or exc),
                             code="io_error")
    finally:
        shutil.rmtree(private, ignore_errors=True)
        remove_path(tmp)
        if renamed and not os.path.exists(path + MANIFEST_SUFFIX):
            remove_path(path)  # a backup without its manifest is not a backup this module vouches for
    return {"size": size, "sha256": digest, "duration": duration, "verification": verification,
            "prisma_migrations": len(history["rows"]), "finished_at": finished.isoformat()}
