# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How every module reaches the database: Prisma URLs, .env files, libpq options, masking.

Plain Python (no Ansible imports) so unit tests call it directly. Errors are raised as
PrismaOpsError with a message that says what to do and never contains a password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

try:
    import psycopg2
    import psycopg2.extensions
    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised by the import sanity test
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = exc

# The one reader of .env files (regular files only, bounded, a URL cut by '#' refused) and the one masking helper.
from ansible_collections.prisma_ops.migrate.plugins.module_utils.dotenv import read_env_value as read_env_file  # noqa: F401
from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import MASK, PrismaOpsError
from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import mask as scrub

DEFAULT_CONNECT_TIMEOUT = 10
DEFAULT_SCHEMA = "public"

# URL query parameters that libpq understands and that mean the same to Prisma.
LIBPQ_PARAMS = frozenset((
    "sslmode", "sslkey", "sslrootcert", "sslcrl", "sslpassword", "application_name", "options",
    "target_session_attrs", "gssencmode", "channel_binding", "keepalives", "keepalives_idle",
    "keepalives_interval", "keepalives_count", "tcp_user_timeout", "host", "hostaddr",
))
# Parameters only Prisma's engines read (pooling, statement cache, ...): understood, not passed on.
PRISMA_ONLY_PARAMS = frozenset((
    "schema", "connection_limit", "pool_timeout", "socket_timeout", "pgbouncer", "statement_cache_size",
    "sslidentity", "sslaccept", "max_connection_lifetime", "max_idle_connection_lifetime",
    "single_use_connections", "connect_timeout", "sslcert",
))
SECRET_PARAMS = frozenset(("sslpassword", "password"))

# The common options of every module, shared by the modules' argspecs and the doc fragment.
COMMON_ARGUMENT_SPEC = dict(
    database_url=dict(type="str", no_log=True),
    env_file=dict(type="path"),
    env_var=dict(type="str", default="DATABASE_URL"),
    login_host=dict(type="str"),
    login_port=dict(type="int", default=5432),
    login_user=dict(type="str"),
    login_password=dict(type="str", no_log=True),
    login_db=dict(type="str"),
    schema=dict(type="str"),
    connect_timeout=dict(type="int"),
)
COMMON_MUTUALLY_EXCLUSIVE = [
    ("database_url", "env_file"),
    ("database_url", "login_host"),
    ("database_url", "login_user"),
    ("database_url", "login_password"),
    ("database_url", "login_db"),
    ("env_file", "login_host"),
    ("env_file", "login_user"),
    ("env_file", "login_password"),
    ("env_file", "login_db"),
]
COMMON_REQUIRED_ONE_OF = [("database_url", "env_file", "login_host", "login_db")]


@dataclass
class ConnectionSpec:
    """Where to connect, with the secret kept apart from everything printable."""

    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    dbname: str | None = None
    schema: str = DEFAULT_SCHEMA
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT
    libpq_params: dict = field(default_factory=dict, repr=False)
    source: str = "the connection options"
    ignored_params: list = field(default_factory=list)

    @property
    def secrets(self) -> list:
        values = [self.password, self.libpq_params.get("sslpassword")]
        return [v for v in values if v]

    @property
    def target(self) -> str:
        """host:port/dbname as the operator would recognise it; no user, no password."""
        host = self.host or "local socket"
        if host.startswith("/"):
            host = "socket %s" % host
        return "%s:%s/%s" % (host, self.port or 5432, self.dbname or self.user or "")

    def libpq_kwargs(self, application_name: str | None = None) -> dict:
        kwargs = {k: v for k, v in self.libpq_params.items() if v not in (None, "")}
        for key in ("host", "port", "user", "password", "dbname"):
            value = getattr(self, key)
            if value not in (None, ""):
                kwargs[key] = value
        kwargs["connect_timeout"] = self.connect_timeout
        if application_name and "application_name" not in kwargs:
            kwargs["application_name"] = application_name
        return kwargs

    def url_for_tools(self) -> str:
        """A postgresql:// URL with the password, for DATABASE_URL of a child process only."""
        from urllib.parse import quote
        auth = ""
        if self.user:
            auth = quote(self.user, safe="")
            if self.password:
                auth += ":" + quote(self.password, safe="")
            auth += "@"
        host = self.host or "localhost"
        query = {}
        if host.startswith("/"):
            query["host"] = host
            host = "localhost"
        elif ":" in host:
            host = "[%s]" % host
        if self.schema != DEFAULT_SCHEMA:
            query["schema"] = self.schema
        for key, value in self.libpq_params.items():
            if key != "host":
                query[key] = value
        suffix = ("?" + "&".join("%s=%s" % (k, quote(str(v), safe="")) for k, v in sorted(query.items()))) if query else ""
        return "postgresql://%s%s:%d/%s%s" % (auth, host, self.port or 5432, quote(self.dbname or "", safe=""), suffix)


def mask_url(url: str) -> str:
    """The URL with its password (and any secret query parameter) replaced by a mask."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return MASK  # not a URL: nothing in it can be shown safely
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" not in authority and ":" in authority and "@" in rest:
        # An unencoded / ? or # in the password ends the authority early: mask up to the last @.
        return "%s://%s:%s@%s" % (scheme, authority.split(":", 1)[0], MASK, rest.rsplit("@", 1)[1])
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, hostinfo = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":" + MASK
        netloc = userinfo + "@" + hostinfo
    query = parts.query
    if query:
        query = "&".join(
            (kv.split("=", 1)[0] + "=" + MASK) if kv.split("=", 1)[0].lower() in SECRET_PARAMS else kv
            for kv in query.split("&")
        )
    rebuilt = "%s://%s%s" % (parts.scheme, netloc, parts.path)
    return rebuilt + ("?" + query if query else "")


def parse_database_url(url: str, source: str = "database_url") -> ConnectionSpec:
    """Parse a Prisma PostgreSQL URL (postgresql:// or postgres://) into a ConnectionSpec."""
    if not isinstance(url, str) or not url.strip():
        raise PrismaOpsError("%s is empty: give a URL like postgresql://USER:PASSWORD@HOST:5432/DB?schema=public" % source)
    url = url.strip()
    # Take the password out first so that no error message below can carry it.
    password = None
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)@", url)
    if match and ":" in match.group(2):
        user_part, password_part = match.group(2).split(":", 1)
        password = unquote(password_part)
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]{0,19})://", url)
    scheme = match.group(1).lower() if match else ""
    if scheme not in ("postgresql", "postgres"):
        # Show the scheme only: the rest of a value that is not a URL may be a password.
        shown = ("it starts with %r" % (scheme + "://")) if scheme else "it does not start with postgresql://"
        raise PrismaOpsError(
            "%s is not a PostgreSQL URL (%s): prisma_ops.migrate supports "
            "postgresql://USER:PASSWORD@HOST:PORT/DB?schema=SCHEMA (Accelerate, Data Proxy and other "
            "providers are not supported)" % (source, shown))
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        # urlsplit quotes pieces of the netloc, which hold the password when it has an unencoded / ? or #.
        if str(exc).startswith("Port"):
            reason = "the port is not a number from 0 to 65535"
        elif "IPv6" in str(exc):
            reason = "the host in [brackets] is not a valid IPv6 address"
        else:
            reason = "it cannot be parsed as a URL"
        raise PrismaOpsError("%s is malformed (%s): %s. Percent-encode special characters in the password "
                             "(e.g. @ as %%40, / as %%2F, : as %%3A)" % (source, reason, mask_url(url)))
    params = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        params[key] = value
    host = parts.hostname
    if params.get("host"):
        host = params["host"]  # Prisma/libpq: ?host=/var/run/postgresql selects a Unix socket
    if not host:
        raise PrismaOpsError("%s has no host: %s" % (source, mask_url(url)))
    dbname = unquote(parts.path[1:]) if parts.path and parts.path != "/" else None
    if dbname and "/" in dbname:
        raise PrismaOpsError("%s has a database name with '/' in it: check the URL path and percent-encode "
                             "special characters in the password: %s" % (source, mask_url(url)))
    user = unquote(parts.username) if parts.username else None
    schema = params.get("schema") or DEFAULT_SCHEMA
    libpq = {}
    ignored = []
    for key, value in params.items():
        if key in LIBPQ_PARAMS:
            if key != "host":
                libpq[key] = value
        elif key == "sslcert":
            # In a Prisma URL sslcert is the CA certificate that verifies the server (libpq's sslrootcert).
            libpq["sslrootcert"] = value
        elif key not in PRISMA_ONLY_PARAMS:
            ignored.append(key)
    timeout = DEFAULT_CONNECT_TIMEOUT
    if params.get("connect_timeout"):
        try:
            timeout = int(params["connect_timeout"])
        except ValueError:
            raise PrismaOpsError("%s has connect_timeout=%r: it must be a whole number of seconds" % (source, params["connect_timeout"]))
    spec = ConnectionSpec(host=host, port=port or 5432, user=user, password=password, dbname=dbname, schema=schema,
                          connect_timeout=timeout, libpq_params=libpq, source=source, ignored_params=sorted(ignored))
    return spec


def resolve_connection(params: dict) -> ConnectionSpec:
    """Build the ConnectionSpec from the common module options (see COMMON_ARGUMENT_SPEC)."""
    if params.get("database_url"):
        spec = parse_database_url(params["database_url"], "database_url")
    elif params.get("env_file"):
        variable = params.get("env_var") or "DATABASE_URL"
        url = read_env_file(params["env_file"], variable)
        spec = parse_database_url(url, "%s in %s" % (variable, params["env_file"]))
    else:
        spec = ConnectionSpec(host=params.get("login_host"), port=params.get("login_port") or 5432,
                              user=params.get("login_user"), password=params.get("login_password"),
                              dbname=params.get("login_db"), source="the login_* options")
    if params.get("schema"):
        spec.schema = params["schema"]
    if params.get("connect_timeout") is not None:
        spec.connect_timeout = int(params["connect_timeout"])
    if spec.connect_timeout < 1:
        raise PrismaOpsError("connect_timeout must be at least 1 second")
    return spec


def explain_connect_error(spec: ConnectionSpec, message: str) -> str:
    """Turn libpq's message into one line that says what is wrong and what to do."""
    text = scrub(message or "", spec.secrets).strip()
    first = text.splitlines()[0] if text else "unknown error"
    lower = text.lower()
    where = spec.target
    if "password authentication failed" in lower:
        return ("cannot connect to %s: password authentication failed for user %r: check the password in %s"
                % (where, spec.user, spec.source))
    if "no password supplied" in lower or "fe_sendauth" in lower:
        return "cannot connect to %s: the server wants a password and %s gives none" % (where, spec.source)
    if "no pg_hba.conf entry" in lower:
        return ("cannot connect to %s: the server refuses this client (no pg_hba.conf entry): allow the host/user in "
                "pg_hba.conf or connect as the app does" % where)
    if "connection refused" in lower:
        return ("cannot connect to %s: connection refused: is PostgreSQL running and listening on that address and port?"
                % where)
    if "could not translate host name" in lower or "name or service not known" in lower:
        return "cannot connect to %s: unknown host name %r: check the host in %s" % (where, spec.host, spec.source)
    if "timeout expired" in lower:
        return ("cannot connect to %s: no answer within %d s (timeout expired): check the network path and firewall, "
                "or raise connect_timeout" % (where, spec.connect_timeout))
    if "does not exist" in lower and "database" in lower:
        return "cannot connect to %s: database %r does not exist: check the database name in %s" % (where, spec.dbname, spec.source)
    if "does not exist" in lower and "role" in lower:
        return "cannot connect to %s: role %r does not exist: check the user in %s" % (where, spec.user, spec.source)
    if "no such file or directory" in lower and "socket" in lower:
        return "cannot connect to %s: no server socket there: is PostgreSQL running on this host?" % where
    return "cannot connect to %s: %s" % (where, first)


def require_psycopg2() -> None:
    if not HAS_PSYCOPG2:
        raise PrismaOpsError(
            "psycopg2 is not installed for the Python that runs this module (%s): install python3-psycopg2 "
            "(Debian/Ubuntu) or `pip install psycopg2-binary`, or point ansible_python_interpreter at a "
            "virtualenv that has it" % _python_path(), missing_library="psycopg2")


def _python_path() -> str:
    import sys
    return sys.executable or "python"


def connect(spec: ConnectionSpec, application_name: str = "prisma_ops.migrate", autocommit: bool = True):
    """Open a psycopg2 connection, or raise PrismaOpsError with an explained, secret-free message."""
    require_psycopg2()
    try:
        conn = psycopg2.connect(**spec.libpq_kwargs(application_name))
    except psycopg2.OperationalError as exc:
        raise PrismaOpsError(explain_connect_error(spec, str(exc)), target=spec.target)
    except psycopg2.ProgrammingError as exc:  # invalid libpq option or DSN
        raise PrismaOpsError("invalid connection options for %s: %s" % (spec.target, scrub(str(exc), spec.secrets).strip()))
    conn.autocommit = autocommit
    return conn


def server_info(conn) -> dict:
    with conn.cursor() as cur:
        cur.execute("SELECT current_database(), current_user, current_setting('server_version'), "
                    "current_setting('server_version_num')::int, host(inet_server_addr()), inet_server_port()")
        dbname, user, version, version_num, addr, port = cur.fetchone()
    return {"database": dbname, "user": user, "server_version": version, "server_version_num": version_num,
            "server_address": addr, "server_port": port}


def _url_schema(url: str) -> str:
    try:
        return dict(parse_qsl(urlsplit(url).query)).get("schema") or DEFAULT_SCHEMA
    except ValueError:
        return DEFAULT_SCHEMA


def tools_url(params: dict, spec: ConnectionSpec) -> str:
    """DATABASE_URL for the app's own tools (the Prisma CLI): the URL as the app has it when possible.

    Prisma-only parameters (connection_limit, pgbouncer, Prisma's meaning of sslcert...) survive that
    way; a URL rebuilt from the spec is used only when there is none, or the schema option overrides it.
    """
    original = None
    if params.get("database_url"):
        original = params["database_url"].strip()
    elif params.get("env_file"):
        original = read_env_file(params["env_file"], params.get("env_var") or "DATABASE_URL").strip()
    if original and (not params.get("schema") or params["schema"] == _url_schema(original)):
        return original
    return spec.url_for_tools()
