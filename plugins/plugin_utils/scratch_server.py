# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A throwaway PostgreSQL server on the controller, for the replay of hosts that have no scratch database.

initdb into a private temporary directory, a server that listens on a Unix socket in that directory only (no TCP at
all), and a database per replay owned by an unprivileged role: the migrations replayed there come from the hosts, so
they get no superuser rights on the controller (no COPY ... PROGRAM, no untrusted extension), and a statement_timeout
bounds a script that never ends. As root, the server runs as the `postgres` user, as PostgreSQL requires.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile

from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError

SERVER_USER = "postgres"
# Where the server binaries are when they are not in a standard place (read on the controller).
BINDIR_ENV = "PRISMA_OPS_REPLAY_POSTGRES_BIN"
REPLAY_ROLE = "prisma_ops_replay"
REPLAY_STATEMENT_TIMEOUT = "300s"  # a safety net for one statement of a replayed migration
START_TIMEOUT = "120"  # pg_ctl -w waits for the server to accept connections; this only bounds a server that never does


def find_bindir(major: int | None = None, override: str | None = None) -> str:
    """The PostgreSQL server binaries: `override` (or $PRISMA_OPS_REPLAY_POSTGRES_BIN), else the host's major when
    installed, else the newest."""
    override = override or os.environ.get(BINDIR_ENV)
    if override:
        if not os.path.isfile(os.path.join(override, "initdb")):
            raise PrismaOpsError("%s=%s holds no initdb: name the bin directory of a PostgreSQL server installation"
                                 % (BINDIR_ENV, override))
        return override
    found = {}
    # Debian's and Ubuntu's layout, then PGDG's on RHEL-like systems.
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb") + glob.glob("/usr/pgsql-*/bin/initdb"):
        match = re.search(r"/(?:postgresql/|pgsql-)(\d+)/bin/initdb$", initdb)
        if match:
            found[int(match.group(1))] = os.path.dirname(initdb)
    if not found:
        raise PrismaOpsError("no PostgreSQL server binaries on the controller (/usr/lib/postgresql/*/bin/initdb): "
                             "install the postgresql package there (e.g. apt-get install postgresql-15) so hosts "
                             "without a scratch database get a replay too, or name a bin directory in %s" % BINDIR_ENV)
    return found.get(major) or found[max(found)]


class ScratchServer:
    """with ScratchServer(bindir) as server: server.database() -> a psycopg2 connection to a fresh database."""

    def __init__(self, bindir: str):
        self.bindir = bindir
        self.root = None
        self._demote = None
        self._owner = None

    def __enter__(self) -> "ScratchServer":
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise PrismaOpsError("the controller runs as root and has no %r user to run the replay's PostgreSQL "
                                     "as (PostgreSQL refuses root): create one, or run ansible as another user"
                                     % SERVER_USER)
            self._owner = (entry.pw_uid, entry.pw_gid)

            def demote() -> None:
                os.setgid(entry.pw_gid)
                os.setuid(entry.pw_uid)
            self._demote = demote
        self.root = tempfile.mkdtemp(prefix="prisma_ops_replay_")
        try:
            if self._owner:
                os.chown(self.root, *self._owner)
            self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8",
                      "--locale=C.UTF-8" if self._has_c_utf8() else "--locale=C")
            with open(os.path.join(self.data, "postgresql.auto.conf"), "a") as conf:
                conf.write("listen_addresses = ''\nunix_socket_directories = '%s'\nfsync = off\n"
                           "synchronous_commit = off\nfull_page_writes = off\nmax_connections = 20\n" % self.root)
            self._run("pg_ctl", "-D", self.data, "-w", "-t", START_TIMEOUT, "-l", os.path.join(self.root, "server.log"),
                      "start")
            admin = self.connect("postgres", "postgres")
            try:
                with admin.cursor() as cur:
                    cur.execute("CREATE ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE" % REPLAY_ROLE)
                    cur.execute("ALTER ROLE %s SET statement_timeout = '%s'" % (REPLAY_ROLE, REPLAY_STATEMENT_TIMEOUT))
            finally:
                admin.close()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.root is None:
            return
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "-t", START_TIMEOUT, "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    @property
    def data(self) -> str:
        return os.path.join(self.root, "data")

    def _has_c_utf8(self) -> bool:
        return subprocess.run(["locale", "-a"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              universal_newlines=True, check=False).stdout.lower().replace("-", "").count("c.utf8") > 0

    def _run(self, tool: str, *args: str, check: bool = True) -> None:
        proc = subprocess.run([os.path.join(self.bindir, tool)] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, universal_newlines=True, check=False, cwd=self.root,
                              preexec_fn=self._demote)  # pylint: disable=subprocess-popen-preexec-fn
        if check and proc.returncode != 0:
            lines = [line for line in proc.stdout.splitlines() if line.strip()]
            raise PrismaOpsError("the controller's replay server: %s failed: %s"
                                 % (tool, lines[-1] if lines else "exit %d" % proc.returncode))

    def connect(self, dbname: str, user: str = REPLAY_ROLE):
        import psycopg2  # the caller checked it is there
        conn = psycopg2.connect(host=self.root, dbname=dbname, user=user, connect_timeout=30,
                                application_name="prisma_ops.migrate/controller-replay")
        conn.autocommit = True
        return conn

    def database(self):
        """A connection (as the unprivileged replay role) to a new database that role owns."""
        name = "replay_" + secrets.token_hex(6)
        admin = self.connect("postgres", "postgres")
        try:
            with admin.cursor() as cur:
                cur.execute("CREATE DATABASE %s OWNER %s TEMPLATE template0" % (name, REPLAY_ROLE))
        finally:
            admin.close()
        return self.connect(name)
