"""Throwaway PostgreSQL clusters for tests and benchmarks.

A cluster lives in a temporary directory, listens on 127.0.0.1 on a free port and
requires a password over TCP (scram-sha-256), like a production server would.
PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import psycopg2
from psycopg2 import sql

PG_BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin")
SERVER_USER = "postgres"


def pg_bindir() -> Path:
    """The directory holding initdb/pg_ctl; PG_BINDIR overrides the search."""
    override = os.environ.get("PG_BINDIR")
    candidates = [override] if override else list(PG_BIN_CANDIDATES)
    for cand in candidates:
        if cand and Path(cand, "initdb").is_file():
            return Path(cand)
    raise RuntimeError("no PostgreSQL server binaries (initdb) found in %s: run `make setup`" % ", ".join(c for c in candidates if c))


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_server_user() -> dict:
    """subprocess kwargs that drop root privileges for the server processes."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(SERVER_USER)

    def demote() -> None:
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)

    return {"preexec_fn": demote}


@dataclass
class Role:
    name: str
    password: str


@dataclass
class Database:
    """One database on a cluster, with the app role that owns it."""

    cluster: "PgCluster"
    name: str
    owner: Role

    def url(self, schema: str | None = None, user: Role | None = None, **params: str) -> str:
        role = user or self.owner
        query = dict(params)
        if schema:
            query["schema"] = schema
        suffix = ("?" + "&".join("%s=%s" % (k, quote(str(v), safe="")) for k, v in query.items())) if query else ""
        return "postgresql://%s:%s@127.0.0.1:%d/%s%s" % (
            quote(role.name, safe=""), quote(role.password, safe=""), self.cluster.port, quote(self.name, safe=""), suffix)

    def connect(self, autocommit: bool = True, superuser: bool = False):
        role = self.cluster.superuser if superuser else self.owner
        conn = psycopg2.connect(host="127.0.0.1", port=self.cluster.port, dbname=self.name,
                                user=role.name, password=role.password, connect_timeout=5)
        conn.autocommit = autocommit
        return conn

    def copy(self, name: str) -> "Database":
        """An exact copy (schema, rows, owner) made by the server; this database must have no open session."""
        with contextlib.closing(self.cluster.admin()) as conn, conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(self.owner.name), sql.Identifier(self.name)))
        return Database(self.cluster, name, self.owner)

    def execute(self, statement: str, params: tuple | None = None, superuser: bool = False) -> list[tuple]:
        """Run one statement (or a whole script) and return the rows, if any."""
        conn = self.connect(superuser=superuser)
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()


@dataclass
class PgCluster:
    root: Path
    port: int
    superuser: Role
    bindir: Path
    _counter: int = field(default=0)

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    def dsn(self, dbname: str = "postgres") -> dict:
        return {"host": "127.0.0.1", "port": self.port, "dbname": dbname,
                "user": self.superuser.name, "password": self.superuser.password}

    def admin(self, dbname: str = "postgres"):
        conn = psycopg2.connect(connect_timeout=5, **self.dsn(dbname))
        conn.autocommit = True
        return conn

    def create_role(self, name: str, password: str | None = None, createdb: bool = False) -> Role:
        role = Role(name, password or secrets.token_urlsafe(12))
        with contextlib.closing(self.admin()) as conn, conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s" + (" CREATEDB" if createdb else "")).format(sql.Identifier(name)),
                        (role.password,))
        return role

    def create_database(self, name: str | None = None, owner: Role | None = None) -> Database:
        self._counter += 1
        name = name or "db_%d_%s" % (self._counter, secrets.token_hex(3))
        owner = owner or self.create_role("app_%s" % name[:40], createdb=False)
        with contextlib.closing(self.admin()) as conn, conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0").format(sql.Identifier(name), sql.Identifier(owner.name)))
        with contextlib.closing(self.admin(name)) as conn, conn.cursor() as cur:
            # PostgreSQL 15 no longer lets every role create in public; the app owns its schema.
            cur.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(owner.name)))
        return Database(self, name, owner)

    def drop_database(self, name: str) -> None:
        with contextlib.closing(self.admin()) as conn, conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), *args], check=check,
                              capture_output=True, text=True, timeout=60, **_as_server_user())

    def start(self) -> None:
        self.pg_ctl("-w", "-t", "30", "-l", str(self.root / "server.log"), "start")

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("-w", "-t", "30", "-m", mode, "stop", check=False)


def start_cluster(base: str | None = None) -> PgCluster:
    """initdb a new cluster in a fresh temporary directory and start it."""
    bindir = pg_bindir()
    root = Path(tempfile.mkdtemp(prefix="prisma-ops-pg-", dir=base))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVER_USER)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    superuser = Role("postgres", secrets.token_urlsafe(16))
    pwfile = root / "pwfile"
    pwfile.write_text(superuser.password + "\n")
    if os.geteuid() == 0:
        os.chown(pwfile, pwd.getpwnam(SERVER_USER).pw_uid, -1)
    os.chmod(pwfile, 0o600)
    proc = subprocess.run([str(bindir / "initdb"), "-D", str(root / "data"), "-U", superuser.name, "--pwfile", str(pwfile),
                           "-A", "scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
                          check=False, capture_output=True, text=True, timeout=120, **_as_server_user())
    if proc.returncode != 0:
        raise RuntimeError("initdb failed in %s: %s" % (root, proc.stderr.strip()))
    pwfile.unlink()
    port = free_port()
    with open(root / "data" / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write("\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n"
                   "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n" % (port, root))
    cluster = PgCluster(root=root, port=port, superuser=superuser, bindir=bindir)
    cluster.start()
    return cluster


@contextlib.contextmanager
def running_cluster(base: str | None = None) -> Iterator[PgCluster]:
    cluster = start_cluster(base)
    try:
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(cluster.root, ignore_errors=True)


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll predicate() until true or timeout; bounded in time by design."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


@contextlib.contextmanager
def seeded_database(cluster: PgCluster, role_prefix: str, password: str, seed: str) -> Iterator[Database]:
    """A database owned by a fresh role (random suffixes on both), filled by `seed`, dropped afterwards."""
    owner = cluster.create_role("%s_%s" % (role_prefix, os.urandom(3).hex()), password=password + os.urandom(3).hex())
    base = cluster.create_database(owner=owner)
    base.execute(seed)
    try:
        yield base
    finally:
        cluster.drop_database(base.name)


@contextlib.contextmanager
def database_copy(template: Database) -> Iterator[Database]:
    """A throwaway copy of `template` (CREATE DATABASE ... TEMPLATE), dropped afterwards."""
    db = template.copy(template.name + "_" + os.urandom(3).hex())
    try:
        yield db
    finally:
        db.cluster.drop_database(db.name)
