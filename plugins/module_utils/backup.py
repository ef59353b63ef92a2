# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_backup's logic: a verified, atomic, private pg_dump with the app's own credentials.

Plain Python (no Ansible imports) so unit tests call it directly. Every external program runs
from an argument list, never a shell. The password reaches pg_dump through PGPASSFILE=/dev/fd/N,
an inherited memfd (a file in memory only): neither argv, nor the environment, nor the file
system ever holds it, so a killed run leaves no password behind (Passfile).

The dump is written to a hidden temporary name in the destination directory, verified
(pg_restore --list, or the plain format's completion marker), fsynced, then renamed to
<prefix>-<database>-<UTC timestamp>.<ext> beside a JSON manifest. Any failure removes the
temporary file, so a final name always means a complete, verified dump.

Every file in a backup directory is reached through TrustedDir: the directory (and its
ancestors) owned by this user or root and writable by no one else, each file opened relative
to the directory's descriptor without following a symlink, and owned the same way. The same
check serves pg_backup, its retention and pg_restore.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import glob
import grp
import hashlib
import json
import math
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
# pg_restore's record of the restore of a backup (restore.py), removed with the backup by retention.
RESTORED_SUFFIX = ".restored.json"
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


def parse_space_factor(value) -> float | None:
    """space_factor as a finite float 0 or more; None/'' -> None (no free-space check)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        factor = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        factor = None
    # isfinite refuses NaN and infinity, which no disk comparison can use.
    if factor is None or not math.isfinite(factor) or factor < 0:
        raise PrismaOpsError("space_factor=%r is not usable: give a number 0 or more (the free disk a new backup needs, "
                             "times the database size; 0 lets any free space pass), or leave it unset" % (value,))
    return factor


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
    # Free disk a new backup needs, as a multiple of pg_database_size(); None: not checked.
    space_factor: float | None = None

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
        space_factor = parse_space_factor(params.get("space_factor"))
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
                   pg_dump_path=params.get("pg_dump_path"), container=container, container_exec=container_exec,
                   space_factor=space_factor)

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


def next_free_name(trusted, prefix: str, database: str, when: datetime.datetime, extension: str) -> str:
    """A name whose timestamp no backup of this prefix and database uses yet, in any format, in the TrustedDir (None:
    a directory not created yet): two backups within one second get consecutive timestamps, so names sort in the
    order the backups were taken."""
    for offset in range(3600):
        stamp = when + datetime.timedelta(seconds=offset)
        taken = False
        for ext in EXT_TO_FORMAT:
            name = backup_name(prefix, database, stamp, ext)
            if trusted is not None and (trusted.lstat(name) is not None
                                        or trusted.lstat(name + MANIFEST_SUFFIX) is not None):
                taken = True
                break
        if not taken:
            return backup_name(prefix, database, stamp, extension)
    raise PrismaOpsError("no free backup name in %s for %s: clean up the directory" % (trusted.path, database))


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


class Passfile:
    """The password for libpq as PGPASSFILE, held in memory only.

    On Linux a memfd holds the .pgpass line: the child inherits the descriptor (pass_fds) and libpq opens
    /dev/fd/N, a regular 0600 file as libpq requires. It exists only while a process holds it open, so even a
    SIGKILL of the module or of pg_dump leaves no password on any file system. Without memfd_create (not Linux)
    the one fallback is a 0600 file in a private 0700 temporary directory, removed on close; that one a SIGKILL
    can outlive."""

    def __init__(self, password: str | None):
        self.fd = None
        self.path = None
        self._dir = None
        if not password:
            return
        line = passfile_line(password).encode("utf-8")
        if hasattr(os, "memfd_create"):
            self.fd = os.memfd_create("prisma-ops-pgpass", os.MFD_CLOEXEC)
            os.fchmod(self.fd, 0o600)
            view = memoryview(line)
            while view:
                view = view[os.write(self.fd, view):]
            self.path = "/dev/fd/%d" % self.fd
        else:
            self._dir = tempfile.mkdtemp(prefix="prisma-ops-pgpass-")
            self.path = os.path.join(self._dir, "pgpass")
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(line)

    @property
    def pass_fds(self) -> tuple:
        return (self.fd,) if self.fd is not None else ()

    def environment(self) -> dict:
        return child_environment(self.path)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> "Passfile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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


# ---------------------------------------------------------------------------------------------
# Trust: who may have written what a backup directory holds


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def trusted_uids(extra_uid: int = -1) -> frozenset:
    """Who may own a backup directory, its ancestors and its files: this module's user and root, plus the owner
    pg_backup was told to give its backups (O(owner)); anyone else could plant or swap a backup."""
    uids = {os.geteuid(), 0}
    if extra_uid is not None and extra_uid != -1:
        uids.add(extra_uid)
    return frozenset(uids)


def _untrusted(path: str, problem: str, fix: str) -> PrismaOpsError:
    return PrismaOpsError("%s %s, so another user could plant a backup there or swap one of its files: it is not "
                          "trusted. Fix: %s; nothing was changed" % (path, problem, fix), code="untrusted")


def check_trusted(path: str, st: os.stat_result, uids: frozenset, ancestor: bool = False) -> None:
    """Refuse a directory or file that is not owned by one of `uids` or is writable by group or others.

    An ancestor may be writable by others when it is sticky and root's or ours (/tmp): there, no one else can
    rename or remove what we own."""
    me = _user_name(os.geteuid())
    if st.st_uid not in uids:
        expected = me if me == "root" else "%s or root" % me
        raise _untrusted(path, "is owned by %s, not by %s" % (_user_name(st.st_uid), expected),
                         "chown %s %s (or use a directory %s owns)" % (me, shlex.quote(path), me))
    writable = stat.S_IMODE(st.st_mode) & 0o022
    if writable and not (ancestor and st.st_mode & stat.S_ISVTX):
        who = "group and others" if writable == 0o022 else "group" if writable & 0o020 else "others"
        raise _untrusted(path, "is writable by its %s" % who, "chmod go-w %s" % shlex.quote(path))


def check_ancestors(path: str, uids: frozenset) -> None:
    """Every existing directory above `path` (symlinks resolved: the real ones count) passes check_trusted."""
    current = os.path.realpath(os.path.dirname(os.path.abspath(path).rstrip("/")) or "/")
    while True:
        try:
            check_trusted(current, os.stat(current), uids, ancestor=True)
        except FileNotFoundError:
            pass  # not created yet: checked once it exists
        if current == "/":
            return
        current = os.path.dirname(current)


def _open_error(path: str, exc: OSError) -> PrismaOpsError:
    if exc.errno == errno.ELOOP:
        return _untrusted(path, "is a symbolic link", "give the real path, or replace the link by the file it names")
    return PrismaOpsError("cannot open %s: %s; nothing was changed" % (path, exc.strerror or exc), code="unreadable")


class TrustedDir:
    """A backup directory held by a descriptor opened without following a symlink, after check_trusted.

    Every file inside is opened, renamed and removed relative to that descriptor, never through a path, so a
    directory or file swapped in the middle cannot redirect a read or a write; each file opened is checked
    (regular file or directory, owner, not writable by others) on its own descriptor."""

    def __init__(self, path: str, uids: frozenset):
        self.path = path
        self.uids = uids
        check_ancestors(path, uids)
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.ENOTDIR and not os.path.islink(path):
                raise PrismaOpsError("%s exists and is not a directory" % path)
            raise _open_error(path, exc)
        try:
            check_trusted(path, os.fstat(self.fd), uids)
        except BaseException:
            os.close(self.fd)
            raise

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "TrustedDir":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def join(self, name: str) -> str:
        return os.path.join(self.path, name)

    def names(self) -> list:
        return os.listdir(self.fd)

    def lstat(self, name: str):
        """os.lstat of an entry, or None when there is none."""
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def open(self, name: str, directory: bool = False, parent_fd: int | None = None, shown: str | None = None) -> int:
        """A read-only descriptor of a trusted entry: not a symlink, a regular file (or directory), owned right."""
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # a FIFO must not block the open
        shown = shown or self.join(name)
        try:
            fd = os.open(name, flags | (os.O_DIRECTORY if directory else 0), dir_fd=self.fd if parent_fd is None
                         else parent_fd)
        except OSError as exc:
            if exc.errno == errno.ENOTDIR and directory:
                raise _untrusted(shown, "is not a directory", "remove it")
            raise _open_error(shown, exc)
        try:
            st = os.fstat(fd)
            if not (stat.S_ISDIR(st.st_mode) if directory else stat.S_ISREG(st.st_mode)):
                raise _untrusted(shown, "is not a regular file", "remove it")
            check_trusted(shown, st, self.uids)
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read_json(self, name: str):
        """The JSON object in a trusted file; None when the file does not exist or is not JSON."""
        if self.lstat(name) is None:
            return None
        fd = self.open(name)
        try:
            with os.fdopen(fd, "r", encoding="utf-8") as handle:
                data = json.load(handle)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def write_json(self, name: str, data: dict, uid: int = -1, gid: int = -1) -> None:
        """Write `name` atomically: a new 0600 temporary entry (never an existing one), fsync, rename, fsync."""
        tmp = ".%s.%s.tmp" % (name, os.urandom(4).hex())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=self.fd)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=2, sort_keys=True)
                handle.write("\n")
                handle.flush()
                if uid != -1 or gid != -1:
                    os.fchown(handle.fileno(), uid, gid)
                os.fsync(handle.fileno())
            os.rename(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            self.remove(tmp)
            raise
        self.fsync()

    def checksum(self, name: str, do_fsync: bool = False) -> tuple:
        """(sha256, size) of a backup. A directory's sha256 is that of its `sha256sum`-style listing (hash, two
        spaces, relative name, sorted by name); every file in it is opened as trusted, relative to its parent."""
        st = self.lstat(name)
        if st is not None and stat.S_ISDIR(st.st_mode):
            return self._tree_checksum(name, do_fsync)
        fd = self.open(name)
        try:
            return _hash_fd(fd, do_fsync)
        finally:
            os.close(fd)

    def _tree_checksum(self, name: str, do_fsync: bool) -> tuple:
        top = self.open(name, directory=True)
        listing = []
        total = 0
        try:
            for dirpath, dirnames, filenames, dir_fd in os.fwalk(".", dir_fd=top):
                dirnames.sort()
                for file_name in filenames:
                    relative = os.path.normpath(os.path.join(dirpath, file_name))
                    fd = self.open(file_name, parent_fd=dir_fd, shown=os.path.join(self.join(name), relative))
                    try:
                        digest, size = _hash_fd(fd, do_fsync)
                    finally:
                        os.close(fd)
                    total += size
                    listing.append((relative, digest))
            if do_fsync:
                os.fsync(top)
        finally:
            os.close(top)
        text = "".join("%s  %s\n" % (digest, relative) for relative, digest in sorted(listing))
        return hashlib.sha256(text.encode("utf-8")).hexdigest(), total

    def remove(self, name: str) -> None:
        """Remove an entry (a backup directory with all in it); never follows a symlink."""
        st = self.lstat(name)
        if st is None:
            return
        if not stat.S_ISDIR(st.st_mode):
            try:
                os.unlink(name, dir_fd=self.fd)
            except FileNotFoundError:
                pass
            return
        top = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        try:
            for dirpath, dirnames, filenames, dir_fd in os.fwalk(".", dir_fd=top, topdown=False):
                for file_name in filenames:
                    os.unlink(file_name, dir_fd=dir_fd)
                for dir_name in dirnames:
                    os.rmdir(dir_name, dir_fd=dir_fd)
        finally:
            os.close(top)
        os.rmdir(name, dir_fd=self.fd)

    def fsync(self) -> None:
        os.fsync(self.fd)


def _hash_fd(fd: int, do_fsync: bool) -> tuple:
    digest = hashlib.sha256()
    size = 0
    os.lseek(fd, 0, os.SEEK_SET)
    while True:
        chunk = os.read(fd, HASH_CHUNK)
        if not chunk:
            break
        size += len(chunk)
        digest.update(chunk)
    if do_fsync:
        os.fsync(fd)
    return digest.hexdigest(), size


def open_backup(path: str, uids: frozenset | None = None) -> tuple:
    """(TrustedDir of its directory, its name) for a backup given by path; the caller closes the TrustedDir."""
    directory, name = os.path.split(os.path.abspath(path))
    return TrustedDir(directory, uids or trusted_uids()), name


def checksum(path: str, do_fsync: bool = False) -> tuple:
    """(sha256, size) of the backup at `path`, read as TrustedDir.checksum does."""
    trusted, name = open_backup(path)
    with trusted:
        return trusted.checksum(name, do_fsync)


# ---------------------------------------------------------------------------------------------
# The backup directory


def check_backup_dir(backup_dir: str, uids: frozenset | None = None) -> dict:
    """Whether the directory exists, is trusted, and this user can write there; raises when not. Writes nothing."""
    uids = uids or trusted_uids()
    if os.path.lexists(backup_dir) and not os.path.isdir(backup_dir):
        raise PrismaOpsError("backup_dir %s exists and is not a directory" % backup_dir)
    if os.path.isdir(backup_dir):
        TrustedDir(backup_dir, uids).close()
        if not os.access(backup_dir, os.W_OK | os.X_OK):
            raise PrismaOpsError("backup_dir %s is not writable by %s: run the task with become, or choose a "
                                 "directory this user owns" % (backup_dir, _whoami()), code="unwritable")
        return {"exists": True}
    parent = os.path.dirname(backup_dir.rstrip("/")) or "/"
    while not os.path.isdir(parent):
        if os.path.lexists(parent):
            raise PrismaOpsError("cannot create backup_dir %s: %s is not a directory" % (backup_dir, parent))
        parent = os.path.dirname(parent)
    check_ancestors(backup_dir, uids)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PrismaOpsError("cannot create backup_dir %s: %s is not writable by %s: run the task with become, or "
                             "create the directory first" % (backup_dir, parent, _whoami()), code="unwritable")
    return {"exists": False}


def ensure_backup_dir(backup_dir: str, uids: frozenset, uid: int, gid: int, trusted=None) -> tuple:
    """(TrustedDir, changed): the directory created (0700), or the trusted one brought to 0700 and the owner/group
    asked for. An untrusted directory is refused (TrustedDir) before anything is changed in it."""
    changed = False
    if trusted is None:
        try:
            check_ancestors(backup_dir, uids)
            os.makedirs(backup_dir, mode=0o700)
            changed = True
        except FileExistsError:
            pass  # another run created it first: trusted or not, TrustedDir decides
        except OSError as exc:
            raise PrismaOpsError("cannot prepare backup_dir %s: %s" % (backup_dir, exc.strerror or exc),
                                 code="unwritable")
        trusted = TrustedDir(backup_dir, uids)
    try:
        st = os.fstat(trusted.fd)
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.fchmod(trusted.fd, 0o700)
            changed = True
        if (uid != -1 and st.st_uid != uid) or (gid != -1 and st.st_gid != gid):
            os.fchown(trusted.fd, uid, gid)
            changed = True
    except OSError as exc:
        trusted.close()
        raise PrismaOpsError("cannot prepare backup_dir %s: %s" % (backup_dir, exc.strerror or exc), code="unwritable")
    return trusted, changed


def set_private(path: str, uid: int, gid: int) -> None:
    """A directory backup's files 0600 and directories 0700, owner/group as asked (inside a trusted directory)."""
    for dirpath, dirnames, filenames in os.walk(path):
        for target in [dirpath] + [os.path.join(dirpath, n) for n in filenames]:
            os.chmod(target, 0o700 if target == dirpath else 0o600, follow_symlinks=False)
            if uid != -1 or gid != -1:
                os.chown(target, uid, gid, follow_symlinks=False)


def set_private_fd(fd: int, uid: int, gid: int) -> None:
    os.fchmod(fd, 0o600)
    if uid != -1 or gid != -1:
        os.fchown(fd, uid, gid)


def verify_dump(fmt: str, path: str, fd: int | None, tools: dict, env: dict, secrets: list) -> dict:
    """Prove the dump is complete: pg_restore reads its table of contents, or plain SQL ends with the marker.

    A file dump is read from `fd` (the descriptor it was written through); a directory dump by its path."""
    if fmt == "plain":
        os.lseek(fd, 0, os.SEEK_SET)
        head = os.read(fd, 256)
        end = os.lseek(fd, 0, os.SEEK_END)
        os.lseek(fd, max(0, end - PLAIN_TAIL_BYTES), os.SEEK_SET)
        tail = os.read(fd, PLAIN_TAIL_BYTES)
        if not head.lstrip().startswith(b"--") or PLAIN_COMPLETE_MARKER not in tail:
            raise PrismaOpsError("pg_dump exited 0 but the plain dump lacks its completion marker (%r): it is "
                                 "incomplete" % PLAIN_COMPLETE_MARKER.decode(), code="verify_failed")
        return {"method": "completion marker"}
    if not tools.get("pg_restore"):
        raise PrismaOpsError("pg_restore is not installed beside %s or on PATH, so the dump cannot be verified: install "
                             "the PostgreSQL client" % tools["pg_dump"], code="pg_restore_missing")
    prefix = in_container(tools, [], stdin=True)
    argv = prefix + [tools["pg_restore"], "--list"] + ([path] if fmt == "directory" else [])
    if fd is not None:
        os.lseek(fd, 0, os.SEEK_SET)
    proc = subprocess.run(argv, stdin=fd if fd is not None else subprocess.DEVNULL, capture_output=True, text=True,
                          env=env, check=False, errors="replace")
    if proc.returncode != 0:
        raise PrismaOpsError("pg_dump exited 0 but pg_restore --list cannot read the dump (exit %d): %s"
                             % (proc.returncode, first_lines(scrub(proc.stderr, secrets))), code="verify_failed")
    entries = sum(1 for line in proc.stdout.splitlines() if line and not line.startswith(";"))
    return {"method": "pg_restore --list", "toc_entries": entries}


def first_lines(text: str, count: int = 3) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return " | ".join(lines[:count]) if lines else "no message"


# ---------------------------------------------------------------------------------------------
# Manifests, write positions, reuse, retention


def read_manifest(trusted: TrustedDir, name: str) -> dict | None:
    """The manifest of backup `name` in a trusted directory; None when there is none of ours."""
    data = trusted.read_json(name + MANIFEST_SUFFIX)
    return data if data is not None and data.get("tool") == TOOL else None


def list_backups(backup_dir: str, prefix: str, database: str, uids: frozenset | None = None) -> list:
    """This module's backups of `database` in the directory: its naming pattern AND a manifest of ours naming it.

    The directory must be trusted, and so must every entry with a backup's name and its manifest (TrustedDir):
    one planted or swapped by another user is refused, with what to fix, rather than skipped."""
    pattern = name_pattern(prefix, database)
    if not os.path.lexists(backup_dir):
        return []
    with TrustedDir(backup_dir, uids or trusted_uids()) as trusted:
        found = []
        for name in trusted.names():
            match = pattern.match(name)
            if not match:
                continue
            st = trusted.lstat(name)
            if st is None:
                continue
            if stat.S_ISLNK(st.st_mode):
                raise _untrusted(trusted.join(name), "is a symbolic link", "remove it: pg_backup never makes one")
            manifest = read_manifest(trusted, name)
            if not manifest or manifest.get("database") != database or manifest.get("file") != name:
                continue
            finished = parse_time(manifest.get("finished_at"))
            if finished is None:
                continue
            found.append({"path": trusted.join(name), "name": name, "manifest": manifest, "finished_at": finished})
    found.sort(key=lambda b: (b["finished_at"], b["name"]), reverse=True)  # newest first
    return found


# The position of the database's committed writes, read in a snapshot: the first transaction id not yet
# finished (txid_snapshot_xmax) and the oldest still running (xmin). Every transaction that writes a row, DDL, a
# setval or a large object gets an id, and its end (commit or abort) moves xmax; nothing else does. The WAL
# position is recorded too, for the record, but does not decide: it moves without any write (the background
# writer logs a running-transactions record some seconds after activity, a checkpoint, a restart).
POSITION_SQL = ("SELECT txid_snapshot_xmin(s)::text, txid_snapshot_xmax(s)::text, CASE WHEN pg_is_in_recovery() "
                "THEN NULL ELSE pg_current_wal_lsn()::text END FROM txid_current_snapshot() s")


def write_position(conn) -> dict:
    """{xmin, xmax, wal_lsn} now (in a REPEATABLE READ transaction: in its snapshot); `idle` when the snapshot
    lists no running transaction (every one it does not see has an id at or above xmax, which is the last
    finished id + 1), the only state in which xmax alone says which writes a snapshot holds."""
    with conn.cursor() as cur:
        cur.execute(POSITION_SQL)
        xmin, xmax, lsn = cur.fetchone()
    return {"xmin": int(xmin), "xmax": int(xmax), "idle": xmin == xmax, "wal_lsn": lsn}


def same_position(recorded, now: dict) -> bool:
    """True when nothing was written since `recorded`: it was idle and no transaction has finished since."""
    return (isinstance(recorded, dict) and recorded.get("idle") is True and recorded.get("xmax") == now["xmax"]
            and now["idle"])


# Every relation with rows of this database: its tables, materialized views and sequences, and its own catalogs
# (DDL), but not the statistics ANALYZE rewrites nor shared catalogs (other databases and roles).
RELATIONS_SQL = """
SELECT format('%I.%I', n.nspname, c.relname), c.oid::bigint, c.relfilenode::bigint, c.relkind::text,
       n.nspname = 'pg_catalog', has_table_privilege(c.oid, 'SELECT')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm', 'S') AND NOT c.relisshared AND n.nspname <> 'information_schema'
  AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)' AND c.relname NOT IN ('pg_statistic', 'pg_statistic_ext_data')
ORDER BY 1
"""
XID_WRAP = 1 << 32


def relation_state(conn, position: dict, since: int | None = None) -> dict | None:
    """In the caller's snapshot: for every relation (RELATIONS_SQL) its oid, file and live row count (a sequence:
    its value), and, with `since` (a recorded xmax), which relations have live rows written by a transaction that
    ended after it (xmin in [since, xmax of `position`)). None when a table of the database cannot be read (then
    nothing can be proven)."""
    state = {"position": position, "relations": {}, "written": []}
    with conn.cursor() as cur:
        cur.execute(RELATIONS_SQL)
        for name, oid, filenode, kind, catalog, readable in cur.fetchall():
            if not readable:
                if catalog:
                    continue  # pg_user_mapping and the like: not the app's data
                return None
            if kind == "S":
                cur.execute("SELECT last_value, is_called FROM %s" % name)
                value, newer = list(cur.fetchone()), 0
            else:
                window = 0 if since is None else position["xmax"] - since
                cur.execute("SELECT count(*), count(*) FILTER (WHERE ((xmin::text::bigint - %%s) %%%% %d + %d) "
                            "%%%% %d < %%s) FROM %s" % (XID_WRAP, XID_WRAP, XID_WRAP, name), (since or 0, window))
                count, newer = cur.fetchone()
                value = [count]
            state["relations"][name] = [oid, filenode] + value
            if newer:
                state["written"].append(name)
    return state


def database_state(conn, since: int | None = None) -> dict | None:
    """relation_state with the write position, in a snapshot of its own (`conn` in autocommit)."""
    conn.autocommit = False
    conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
    try:
        return relation_state(conn, write_position(conn), since)
    finally:
        conn.rollback()
        conn.set_session(isolation_level="DEFAULT", readonly="DEFAULT")
        conn.autocommit = True


def unchanged_since(recorded, conn, position: dict | None = None) -> bool:
    """True when nothing was written in this database since `recorded` (a relation_state): no transaction with an
    id has ended on the server since (same_position), or the ones that did wrote no row of this database (the same
    relations, files, live row counts and sequence values, and no live row with a newer xmin). `position`: the
    caller's snapshot's, to read in that snapshot; None: a snapshot of its own."""
    if not isinstance(recorded, dict):
        return False
    then = recorded.get("position")
    if not isinstance(then, dict) or not isinstance(then.get("xmax"), int) or not isinstance(then.get("xmin"), int):
        return False
    # A row the recorded snapshot did not see was written by a transaction id at or above its xmin (its xmax when
    # no transaction was running). Counting from xmin also flags rows the snapshot did see that recent
    # transactions wrote: then the answer is "changed", never a wrong "unchanged".
    since = then["xmax"] if then.get("idle") else then["xmin"]
    now = database_state(conn, since) if position is None else relation_state(conn, position, since)
    if now is None:
        return False
    if same_position(then, now["position"]):
        return True
    return not now["written"] and now["relations"] == recorded.get("relations")


def find_reusable(backups: list, opts: BackupOptions, server: str, now: datetime.datetime, notes: list,
                  trusted: TrustedDir, position: dict, history: dict, conn=None) -> dict | None:
    """The newest verified backup of the same database, server and selection, younger than reuse_within, with
    nothing written since it was taken (the same write position, or, read in `conn`'s snapshot, no row of this
    database written since: unchanged_since), the same _prisma_migrations rows, and whose content still matches
    its manifest's checksum. A manifest without a position is never reused."""
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
        recorded = dict(manifest.get("state") or {}, position=manifest.get("position"))
        unchanged = same_position(manifest.get("position"), position) or (
            conn is not None and unchanged_since(recorded, conn, position))
        if not unchanged or manifest.get("prisma_migrations") != history:
            notes.append("%s was taken before later writes (or records no write position): not reused"
                         % backup["path"])
            continue
        if trusted.lstat(backup["name"]) is None:
            continue
        try:
            digest, size = trusted.checksum(backup["name"])
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
# Free disk for a new backup (space_factor)


SIZE_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def format_size(size: float) -> str:
    """Bytes as Jinja's filesizeformat(binary=true) writes them ('1.0 MiB', '512 Bytes'): the words the role's
    messages have always used."""
    size = float(size)
    if size == 1:
        return "1 Byte"
    if size < 1024:
        return "%d Bytes" % size
    unit = 1024
    for prefix in SIZE_UNITS:
        unit *= 1024
        if size < unit or prefix == SIZE_UNITS[-1]:
            return "%.1f %s" % (1024 * size / unit, prefix)
    raise AssertionError("unreachable")


def nearest_existing_dir(path: str) -> str:
    """`path` when it is a directory, else its nearest existing parent: the file system a new directory lands on."""
    current = os.path.abspath(path)
    while not os.path.isdir(current) and os.path.dirname(current) != current:
        current = os.path.dirname(current)
    return current


def free_space(path: str) -> tuple:
    """(directory measured, bytes an unprivileged writer may still use there) for `path` or its nearest parent."""
    where = nearest_existing_dir(path)
    try:
        st = os.statvfs(where)
    except OSError as exc:
        raise PrismaOpsError("cannot read the free space of %s: %s; nothing was changed" % (where, exc.strerror or exc),
                             code="unreadable")
    return where, st.f_bavail * st.f_frsize


def space_needed(database_size: int, factor: float) -> int:
    """Bytes a new backup is assumed to need: the database size times the factor (never negative)."""
    return max(0, int(database_size * factor))


def check_space(database: str, database_size: int, factor: float, free: int, where: str) -> int:
    """The bytes needed, or the refusal (code no_space) when they are more than `free`. Pure: no I/O."""
    need = space_needed(database_size, factor)
    if need > free:
        raise PrismaOpsError(
            "not enough free disk for the backup: need %s (database %s is %s, times space_factor %s), have %s in %s. "
            "Nothing was changed; free space there, or point backup_dir at a larger disk"
            % (format_size(need), database, format_size(database_size), factor, format_size(free), where),
            code="no_space", free_bytes=free, database_size=database_size)
    return need


def database_size(conn) -> int:
    """pg_database_size(current_database()) in the caller's snapshot; a clear error when it cannot be read."""
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_database_size(current_database())")
            return int(cur.fetchone()[0])
    except Exception as exc:  # pylint: disable=broad-except  # psycopg2's errors, without importing it here
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PrismaOpsError("cannot read the database's size for space_factor (%s); nothing was changed. Grant the "
                             "user CONNECT on the database (or pg_read_all_stats), or leave space_factor unset" % text,
                             code="size_unknown")


# ---------------------------------------------------------------------------------------------
# The whole operation


LOCK_WAIT = 900


def lock_backup_dir(trusted: TrustedDir, wait: float = LOCK_WAIT) -> None:
    """An exclusive flock on the trusted backup directory's own descriptor, waited for at most `wait` seconds.

    Two runs at once (two operators, cron and a person) must not both dump, nor race for one name: the second
    waits here, then finds the first one's backup and reuses it. The lock dies with the process that holds it,
    so a killed run leaves nothing to clean up, and no lock file is left in the directory."""
    started = time.monotonic()
    while True:
        try:
            fcntl.flock(trusted.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() - started >= wait:
                raise PrismaOpsError("another pg_backup into %s has held its lock for %d s: wait for it to finish, then "
                                     "run again; nothing was changed" % (trusted.path, wait), code="backup_locked")
            time.sleep(0.2)


class _LockedLate(Exception):
    """The backup directory was created (and locked) only now: choose again, under the lock."""


def run_backup(spec: ConnectionSpec, opts: BackupOptions, check_mode: bool = False) -> dict:
    """Take (or reuse) a verified backup; apply retention. Returns the module's result; raises PrismaOpsError."""
    secrets = list(spec.secrets)
    uid, gid = resolve_owner(opts.owner, opts.group)
    uids = trusted_uids(uid)
    dir_state = check_backup_dir(opts.backup_dir, uids)
    notes: list = []
    # One backup at a time per directory, from choosing (reuse, or a new name) to the manifest (lock_backup_dir).
    # A directory that does not exist yet is locked once it is created, and the choice is made again under the lock.
    held = {"dir": None, "changed": False}
    try:
        if dir_state["exists"]:
            held["dir"] = TrustedDir(opts.backup_dir, uids)
            if not check_mode:
                lock_backup_dir(held["dir"])
        try:
            return _run_backup_locked(spec, opts, check_mode, secrets, uid, gid, uids, notes, held)
        except _LockedLate:
            return _run_backup_locked(spec, opts, check_mode, secrets, uid, gid, uids, notes, held)
    finally:
        if held["dir"] is not None:
            held["dir"].close()


def _run_backup_locked(spec, opts, check_mode, secrets, uid, gid, uids, notes, held) -> dict:
    conn = connect(spec, application_name=APPLICATION_NAME, autocommit=False)
    try:
        # One read-only snapshot: server facts, the write position, the history rows, and (exported) the dump itself.
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        info = server_info(conn)
        database = info["database"]
        server = "%s:%s" % (spec.host or "local socket", spec.port or 5432)
        now = utcnow()
        trusted = held["dir"]
        backups = list_backups(opts.backup_dir, opts.prefix, database, uids) if trusted else []
        position = write_position(conn)
        history = history_for_manifest(conn, spec.schema)
        reused = trusted and find_reusable(backups, opts, server, now, notes, trusted, position, history, conn)
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
            if opts.space_factor is not None:
                # Before anything is written (the directory is created only below), in check mode too.
                size = database_size(conn)
                where, free = free_space(opts.backup_dir)
                check_space(database, size, opts.space_factor, free, where)
                result.update(free_bytes=free, database_size=size)
            server_ver = server_major(info["server_version_num"])
            tools = (container_tools(opts, server_ver, info["server_version"]) if opts.container
                     else find_tools(opts.pg_dump_path, server_ver, info["server_version"]))
            name = next_free_name(trusted, opts.prefix, database, now, opts.extension)
            path = os.path.join(opts.backup_dir, name)
            result.update(path=path, manifest=path + MANIFEST_SUFFIX, reused=False, pg_dump_version=tools["version_line"],
                          restore_command=restore_command(opts.format, path, tools, spec, database, opts.jobs),
                          size=None, sha256=None, duration=None, changed=True)
            keep = {path}
            if not check_mode:
                if trusted is None:
                    held["dir"], held["changed"] = ensure_backup_dir(opts.backup_dir, uids, uid, gid)
                    lock_backup_dir(held["dir"])
                    raise _LockedLate()
                dir_changed = ensure_backup_dir(opts.backup_dir, uids, uid, gid, trusted)[1] or held["changed"]
                # With reuse_within, what the next run compares with: every relation's state in the dump's snapshot.
                state = relation_state(conn, position) if opts.reuse_within else None
                done = dump(conn, spec, opts, tools, trusted, name, info, now, secrets, uid, gid, position, history,
                            state)
                result.update(done, dir_changed=dir_changed)
                backups = list_backups(opts.backup_dir, opts.prefix, database, uids)
        if check_mode and not reused:
            # The backup a real run would take counts towards keep_last, as it would after the run.
            backups = [{"path": result["path"], "name": os.path.basename(result["path"]), "finished_at": now}] + backups
        doomed = plan_retention(backups, keep, opts.keep_last, opts.max_age, now)
        result["deleted"] = [b["path"] for b in doomed]
        if doomed:
            result["changed"] = True
            if not check_mode:
                for backup in doomed:
                    trusted.remove(backup["name"])
                    trusted.remove(backup["name"] + MANIFEST_SUFFIX)
                    trusted.remove(backup["name"] + RESTORED_SUFFIX)
                trusted.fsync()
        if check_mode and trusted is None:
            notes.append("backup_dir %s does not exist yet; it would be created (0700)" % opts.backup_dir)
    finally:
        conn.close()
    return result


def dump(conn, spec: ConnectionSpec, opts: BackupOptions, tools: dict, trusted: TrustedDir, name: str, info: dict,
         started: datetime.datetime, secrets: list, uid: int, gid: int, position: dict, history: dict,
         state: dict | None = None) -> dict:
    """pg_dump to a temporary name, verify, fsync, rename, manifest. Leaves nothing behind on failure.

    A file dump goes to pg_dump's stdout, into a descriptor this module created (O_EXCL, no symlink followed)
    relative to the trusted directory; the rename is relative to it too."""
    path = trusted.join(name)
    snapshot = export_snapshot(conn)
    # A hidden name that never matches the backup pattern, so retention and reuse ignore it.
    tmp = ".%s.tmp-%s" % (name, os.urandom(4).hex())
    renamed = False
    out_fd = None
    in_container_ = bool(tools.get("container"))
    passfile = Passfile(None if in_container_ else spec.password)
    try:
        env = passfile.environment()
        if opts.format != "directory":
            out_fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                             dir_fd=trusted.fd)
        if in_container_:
            # A passfile on this host means nothing inside the container: the CLI passes PGPASSWORD on by name.
            if spec.password:
                env["PGPASSWORD"] = spec.password
            prefix = in_container(tools, ["PGPASSWORD"] if spec.password else [])
            argv = prefix + pg_dump_argv(tools, opts, spec, None, snapshot)
        else:
            argv = pg_dump_argv(tools, opts, spec, trusted.join(tmp) if opts.format == "directory" else None, snapshot)
        clock = time.monotonic()
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out_fd if out_fd is not None
                                  else subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False,
                                  pass_fds=passfile.pass_fds)
            proc.stderr = (proc.stderr or b"").decode("utf-8", "replace")
        except OSError as exc:
            raise PrismaOpsError("cannot run %s: %s" % (tools["pg_dump"], exc.strerror or exc), code="pg_dump_failed")
        dump_seconds = time.monotonic() - clock
        stderr = scrub(proc.stderr or "", secrets)
        if proc.returncode != 0:
            raise PrismaOpsError("pg_dump failed (exit %d): %s; nothing was written to %s" % (
                proc.returncode, first_lines(stderr), trusted.path), code="pg_dump_failed",
                stderr=stderr[-STDERR_LIMIT:], cmd=[scrub(a, secrets) for a in argv], rc=proc.returncode)
        verification = verify_dump(opts.format, trusted.join(tmp), out_fd, tools, env, secrets)
        if out_fd is not None:
            set_private_fd(out_fd, uid, gid)
            digest, size = _hash_fd(out_fd, do_fsync=True)
        else:
            set_private(trusted.join(tmp), uid, gid)
            digest, size = trusted.checksum(tmp, do_fsync=True)
        os.rename(tmp, name, src_dir_fd=trusted.fd, dst_dir_fd=trusted.fd)
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
            # Only a dump of the transaction's own snapshot is at this position.
            "position": position if snapshot else None, "state": state if snapshot else None,
            "restore_command": restore_command(opts.format, path, tools, spec, info["database"], opts.jobs),
            "prisma_migrations": history,
        }
        trusted.write_json(name + MANIFEST_SUFFIX, manifest, uid, gid)
    except OSError as exc:
        # Disk full while hashing or writing the manifest, a directory that vanished, ...
        raise PrismaOpsError("backup to %s failed: %s; nothing was left behind" % (trusted.path, exc.strerror or exc),
                             code="io_error")
    finally:
        passfile.close()
        if out_fd is not None:
            os.close(out_fd)
        trusted.remove(tmp)
        if renamed and trusted.lstat(name + MANIFEST_SUFFIX) is None:
            trusted.remove(name)  # a backup without its manifest is not a backup this module vouches for
    return {"size": size, "sha256": digest, "duration": duration, "verification": verification,
            "prisma_migrations": len(history["rows"]), "finished_at": finished.isoformat()}
