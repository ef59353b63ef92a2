"""Unit tests of module_utils/connection.py: Prisma URLs, libpq options, masking, error texts."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from ansible_collections.prisma_ops.migrate.plugins.module_utils.connection import (
    DEFAULT_CONNECT_TIMEOUT, MASK, ConnectionSpec, explain_connect_error, mask_url, parse_database_url,
    resolve_connection, scrub,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError

pytestmark = pytest.mark.unit

SECRET = "S3cr3t-P@ss"
SECRET_ENC = quote(SECRET, safe="")  # S3cr3t-P%40ss


def assert_no_secret(text: str, *secrets: str) -> None:
    for secret in secrets or (SECRET, SECRET_ENC, SECRET[:4]):
        assert secret not in text, "secret %r leaked in %r" % (secret, text)


# --------------------------------------------------------------------------------------------
# Parsing good URLs
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "POSTGRESQL", "Postgres"])
def test_both_schemes_accepted(scheme):
    spec = parse_database_url("%s://app:pw@db.example.com:6543/appdb" % scheme)
    assert (spec.host, spec.port, spec.user, spec.password, spec.dbname) == ("db.example.com", 6543, "app", "pw", "appdb")
    assert spec.schema == "public"
    assert spec.connect_timeout == DEFAULT_CONNECT_TIMEOUT
    assert spec.ignored_params == []
    assert spec.source == "database_url"


def test_percent_encoded_user_password_and_db_are_decoded():
    spec = parse_database_url("postgresql://us%40er:p%40ss%2Fw%3Ard@db:5432/app%20db")
    assert spec.user == "us@er"
    assert spec.password == "p@ss/w:rd"
    assert spec.dbname == "app db"
    kwargs = spec.libpq_kwargs()
    assert kwargs["password"] == "p@ss/w:rd"
    assert kwargs["user"] == "us@er"


def test_raw_at_sign_in_password_uses_last_at_as_separator():
    spec = parse_database_url("postgresql://app:%s@db/appdb" % SECRET)
    assert spec.password == SECRET
    assert spec.host == "db"
    assert spec.user == "app"


@pytest.mark.parametrize("url, port", [
    ("postgresql://u:p@[::1]:5433/db", 5433),
    ("postgresql://u:p@[::1]/db", 5432),
    ("postgres://u:p@[2001:db8::7]:6000/db", 6000),
])
def test_ipv6_host_without_brackets(url, port):
    spec = parse_database_url(url)
    assert spec.host in ("::1", "2001:db8::7")
    assert "[" not in spec.host
    assert spec.port == port
    assert spec.libpq_kwargs()["host"] == spec.host


@pytest.mark.parametrize("url", [
    "postgresql://u:p@db/app",
    "postgresql://u:p@db:/app",
    "postgresql://u:p@db",
])
def test_default_port_is_5432(url):
    spec = parse_database_url(url)
    assert spec.port == 5432
    assert spec.libpq_kwargs()["port"] == 5432


def test_no_database_in_path():
    spec = parse_database_url("postgresql://u:p@db")
    assert spec.dbname is None
    assert "dbname" not in spec.libpq_kwargs()


def test_schema_parameter_sets_schema_and_is_not_passed_to_libpq():
    spec = parse_database_url("postgresql://u:p@db/app?schema=tenant")
    assert spec.schema == "tenant"
    kwargs = spec.libpq_kwargs()
    assert "schema" not in kwargs
    assert "tenant" not in kwargs.values()


@pytest.mark.parametrize("url", [
    "postgresql://u:p@localhost/app?host=/var/run/postgresql",
    "postgresql://u:p@/app?host=/var/run/postgresql",
])
def test_host_query_parameter_selects_unix_socket(url):
    spec = parse_database_url(url)
    assert spec.host == "/var/run/postgresql"
    assert spec.port == 5432
    kwargs = spec.libpq_kwargs()
    assert kwargs["host"] == "/var/run/postgresql"
    assert list(kwargs).count("host") == 1
    assert "socket /var/run/postgresql" in spec.target


def test_prisma_only_params_dropped_libpq_params_kept_sslcert_mapped_unknown_listed():
    url = ("postgresql://u:p@db:5432/app?schema=tenant&connection_limit=5&pool_timeout=10&pgbouncer=true"
           "&statement_cache_size=0&socket_timeout=3&sslaccept=strict"
           "&sslmode=require&application_name=billing&sslcert=/etc/ssl/ca.pem&frobnicate=1&zzz_unknown=")
    spec = parse_database_url(url)
    kwargs = spec.libpq_kwargs(application_name="prisma_ops")
    for dropped in ("schema", "connection_limit", "pool_timeout", "pgbouncer", "statement_cache_size",
                    "socket_timeout", "sslaccept", "sslcert", "frobnicate", "zzz_unknown"):
        assert dropped not in kwargs, dropped
    assert kwargs["sslmode"] == "require"
    # The URL's application_name wins over the module's default.
    assert kwargs["application_name"] == "billing"
    # Prisma's sslcert is the CA that verifies the server: libpq calls that sslrootcert.
    assert kwargs["sslrootcert"] == "/etc/ssl/ca.pem"
    assert "sslcert" not in kwargs
    assert spec.ignored_params == ["frobnicate", "zzz_unknown"]
    assert spec.schema == "tenant"
    assert kwargs["connect_timeout"] == DEFAULT_CONNECT_TIMEOUT
    assert set(kwargs) == {"host", "port", "user", "password", "dbname", "connect_timeout", "sslmode",
                           "application_name", "sslrootcert"}


def test_application_name_default_added_when_url_has_none():
    spec = parse_database_url("postgresql://u:p@db/app?sslmode=disable")
    assert spec.libpq_kwargs(application_name="prisma_ops.migrate")["application_name"] == "prisma_ops.migrate"
    assert "application_name" not in spec.libpq_kwargs()


def test_connect_timeout_from_url_is_used_and_not_a_libpq_param_twice():
    spec = parse_database_url("postgresql://u:p@db/app?connect_timeout=3")
    assert spec.connect_timeout == 3
    assert spec.libpq_kwargs()["connect_timeout"] == 3
    assert spec.ignored_params == []


def test_sslpassword_is_a_secret():
    spec = parse_database_url("postgresql://u:p@db/app?sslpassword=K3yPass&sslkey=/k.pem")
    assert spec.libpq_kwargs()["sslpassword"] == "K3yPass"
    assert "K3yPass" in spec.secrets and "p" in spec.secrets
    assert "K3yPass" not in repr(spec)
    assert "'p'" not in repr(spec)


def test_repr_and_target_never_show_password():
    spec = parse_database_url("postgresql://app:%s@db.internal:6543/appdb" % SECRET_ENC)
    assert_no_secret(repr(spec))
    assert_no_secret(spec.target)
    assert spec.target == "db.internal:6543/appdb"


# --------------------------------------------------------------------------------------------
# Malformed URLs: PrismaOpsError, never with the password
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("url, expected", [
    ("postgresql://app:%s@db:abc/appdb" % SECRET_ENC, "malformed"),
    ("postgresql://app:%s@db:abc/appdb" % SECRET, "malformed"),
    ("postgresql://app:%s@db:99999/appdb" % SECRET_ENC, "malformed"),
    ("mysql://app:%s@db:3306/appdb" % SECRET, "not a PostgreSQL URL"),
    ("prisma://accelerate.prisma-data.net/?api_key=%s" % SECRET, "not a PostgreSQL URL"),
    ("prisma+postgres://app:%s@db/appdb" % SECRET, "not a PostgreSQL URL"),
    ("", "empty"),
    ("   ", "empty"),
    ("postgresql://app:%s@/appdb" % SECRET, "no host"),
    ("postgresql://app:%s@:5432/appdb" % SECRET_ENC, "no host"),
    ("postgresql://app:%s@[::1/appdb" % SECRET_ENC, "malformed"),
    # Typos and misplaced values: nothing of them may be echoed.
    ("postgresql:/u:%s@db/appdb" % SECRET, "not a PostgreSQL URL"),
    ("postgresql:u:%s@db/appdb" % SECRET, "not a PostgreSQL URL"),
    ("postgresql//u:%s@db/appdb" % SECRET, "not a PostgreSQL URL"),
    (SECRET, "not a PostgreSQL URL"),  # env_var pointed at the password variable by mistake
    ("postgresql://app:%s@db/appdb?connect_timeout=soon" % SECRET_ENC, "connect_timeout"),
])
def test_malformed_urls_raise_without_password(url, expected):
    with pytest.raises(PrismaOpsError) as info:
        parse_database_url(url)
    message = info.value.msg
    assert expected in message
    assert str(info.value) == message
    assert_no_secret(message)
    assert_no_secret(repr(info.value.details))


@pytest.mark.parametrize("password", ["S3cr/et-P@ss", "S3cr?et-Pass", "S3cr#et-Pass", "1234/S3cretPass"])
def test_unencoded_delimiters_in_password_never_leak_any_piece(password):
    url = "postgresql://app:%s@db.internal:5432/appdb" % password
    with pytest.raises(PrismaOpsError) as info:
        parse_database_url(url)
    message = info.value.msg
    assert "Percent-encode" in message or "percent-encode" in message
    for piece in [password] + [p for p in password.replace("?", "/").replace("#", "/").split("/") if len(p) >= 3]:
        assert piece not in message, (piece, message)
    assert "db.internal" in message  # the operator still sees which URL is wrong


def test_bad_port_message_names_the_problem():
    with pytest.raises(PrismaOpsError) as info:
        parse_database_url("postgresql://app:%s@db:abc/appdb" % SECRET_ENC)
    assert "port" in info.value.msg
    assert "postgresql://app:%s@db:abc/appdb" % MASK in info.value.msg


def test_wrong_scheme_message_names_scheme_only():
    with pytest.raises(PrismaOpsError) as info:
        parse_database_url("mysql://app:%s@db/appdb" % SECRET)
    assert "'mysql://'" in info.value.msg
    assert "app" not in info.value.msg.split("supports")[0]


def test_database_name_with_slash_is_rejected():
    with pytest.raises(PrismaOpsError) as info:
        parse_database_url("postgresql://app:%s@db/a%%2Fb" % SECRET_ENC)
    assert "database name" in info.value.msg
    assert_no_secret(info.value.msg)


def test_source_appears_in_error():
    with pytest.raises(PrismaOpsError) as info:
        parse_database_url("mysql://x@y/z", source="DATABASE_URL in /opt/app/.env")
    assert info.value.msg.startswith("DATABASE_URL in /opt/app/.env ")


# --------------------------------------------------------------------------------------------
# mask_url and scrub
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("url, expected", [
    ("postgresql://app:%s@db:5432/appdb?schema=t" % SECRET_ENC, "postgresql://app:%s@db:5432/appdb?schema=t" % MASK),
    ("postgresql://app:%s@db/appdb" % SECRET, "postgresql://app:%s@db/appdb" % MASK),
    ("postgresql://app@db/appdb", "postgresql://app@db/appdb"),
    ("postgresql://db/appdb", "postgresql://db/appdb"),
    ("postgresql://u:p@db/app?sslmode=verify-full&sslpassword=%s&application_name=x" % SECRET_ENC,
     "postgresql://u:%s@db/app?sslmode=verify-full&sslpassword=%s&application_name=x" % (MASK, MASK)),
    ("postgresql://u@db/app?SSLPASSWORD=%s" % SECRET, "postgresql://u@db/app?SSLPASSWORD=%s" % MASK),
    ("postgresql://u:p@[::1]:5433/app", "postgresql://u:%s@[::1]:5433/app" % MASK),
    ("postgresql://app:S3cr/et@db/appdb", "postgresql://app:%s@db/appdb" % MASK),
    ("not a url %s" % SECRET, MASK),
])
def test_mask_url(url, expected):
    assert mask_url(url) == expected


@pytest.mark.parametrize("secret", [SECRET, "p@ss/w:rd", "a b+c&d=e"])
def test_scrub_removes_raw_and_percent_encoded_forms(secret):
    forms = {secret, quote(secret, safe=""), quote(secret)}
    text = "before " + " | ".join(sorted(forms)) + " after"
    cleaned = scrub(text, [secret])
    for form in forms:
        assert form not in cleaned
    assert cleaned.startswith("before ") and cleaned.endswith(" after")
    assert cleaned.count(MASK) == len(forms)


@pytest.mark.parametrize("text, secrets, expected", [
    ("", [SECRET], ""),
    (None, [SECRET], None),
    ("nothing here", [], "nothing here"),
    ("nothing here", None, "nothing here"),
    ("x", [None, ""], "x"),
])
def test_scrub_edge_cases(text, secrets, expected):
    assert scrub(text, secrets) == expected


# --------------------------------------------------------------------------------------------
# explain_connect_error
# --------------------------------------------------------------------------------------------

@pytest.fixture
def spec():
    return parse_database_url("postgresql://app:%s@db.internal:6543/appdb?connect_timeout=7" % SECRET_ENC)


@pytest.mark.parametrize("libpq_message, must_contain", [
    ('connection to server at "db.internal" (10.0.0.5), port 6543 failed: FATAL:  password authentication failed '
     'for user "app" (tried password %s)' % SECRET, ["password authentication failed", "'app'", "database_url"]),
    ('connection to server at "db.internal" (10.0.0.5), port 6543 failed: Connection refused\n\tIs the server '
     'running on that host and accepting TCP/IP connections? postgresql://app:%s@db.internal' % SECRET_ENC,
     ["connection refused"]),
    ('could not translate host name "db.internal" to address: Name or service not known', ["unknown host name", "'db.internal'"]),
    ('connection to server at "db.internal" (10.0.0.5), port 6543 failed: timeout expired', ["timeout expired", "7 s"]),
    ('connection to server at "db.internal" (10.0.0.5), port 6543 failed: FATAL:  database "appdb" does not exist',
     ["database 'appdb' does not exist"]),
    ('connection to server at "db.internal" (10.0.0.5), port 6543 failed: FATAL:  no pg_hba.conf entry for host '
     '"10.0.0.9", user "app", database "appdb", SSL encryption', ["pg_hba.conf"]),
    ('connection to server at "db.internal" (10.0.0.5), port 6543 failed: FATAL:  role "app" does not exist',
     ["role 'app' does not exist"]),
    ("fe_sendauth: no password supplied", ["wants a password"]),
    ("something entirely new happened with %s\nsecond line" % SECRET, ["something entirely new happened"]),
])
def test_explain_connect_error(spec, libpq_message, must_contain):
    line = explain_connect_error(spec, libpq_message)
    assert "\n" not in line
    assert line.startswith("cannot connect to db.internal:6543/appdb: ")
    for fragment in must_contain:
        assert fragment in line, (fragment, line)
    assert_no_secret(line)


def test_explain_connect_error_scrubs_unknown_message(spec):
    line = explain_connect_error(spec, "odd failure: %s / %s" % (SECRET, SECRET_ENC))
    assert line == "cannot connect to db.internal:6543/appdb: odd failure: %s / %s" % (MASK, MASK)


def test_explain_connect_error_empty_message(spec):
    assert explain_connect_error(spec, "") == "cannot connect to db.internal:6543/appdb: unknown error"
    assert explain_connect_error(spec, None) == "cannot connect to db.internal:6543/appdb: unknown error"


def test_explain_connect_error_socket():
    spec = parse_database_url("postgresql://app:pw@/appdb?host=/run/postgresql")
    line = explain_connect_error(spec, 'connection to server on socket "/run/postgresql/.s.PGSQL.5432" failed: '
                                       'No such file or directory')
    assert "socket /run/postgresql" in line
    assert "no server socket" in line


def test_explain_connect_error_login_source():
    spec = resolve_connection({"login_host": "db", "login_user": "app", "login_password": SECRET, "login_db": "appdb"})
    line = explain_connect_error(spec, 'FATAL:  password authentication failed for user "app" %s' % SECRET)
    assert "the login_* options" in line
    assert_no_secret(line)


# --------------------------------------------------------------------------------------------
# resolve_connection
# --------------------------------------------------------------------------------------------

def test_resolve_database_url_with_url_schema_and_timeout():
    spec = resolve_connection({"database_url": "postgresql://u:p@db/app?schema=from_url&connect_timeout=4"})
    assert spec.schema == "from_url"
    assert spec.connect_timeout == 4


def test_resolve_schema_option_overrides_url_schema():
    spec = resolve_connection({"database_url": "postgresql://u:p@db/app?schema=from_url", "schema": "from_option"})
    assert spec.schema == "from_option"


def test_resolve_connect_timeout_option_overrides_url():
    spec = resolve_connection({"database_url": "postgresql://u:p@db/app?connect_timeout=4", "connect_timeout": 30})
    assert spec.connect_timeout == 30
    assert spec.libpq_kwargs()["connect_timeout"] == 30


@pytest.mark.parametrize("bad", [0, -1])
def test_resolve_connect_timeout_must_be_positive(bad):
    with pytest.raises(PrismaOpsError, match="at least 1 second"):
        resolve_connection({"database_url": "postgresql://u:p@db/app", "connect_timeout": bad})


def test_resolve_login_options():
    spec = resolve_connection({"login_host": "db.internal", "login_port": 6000, "login_user": "app",
                               "login_password": SECRET, "login_db": "appdb", "schema": "tenant",
                               "connect_timeout": 5})
    assert isinstance(spec, ConnectionSpec)
    assert (spec.host, spec.port, spec.user, spec.password, spec.dbname) == ("db.internal", 6000, "app", SECRET, "appdb")
    assert spec.schema == "tenant"
    assert spec.connect_timeout == 5
    assert spec.source == "the login_* options"
    assert spec.secrets == [SECRET]
    assert spec.libpq_kwargs()["password"] == SECRET


def test_resolve_login_defaults():
    spec = resolve_connection({"login_db": "appdb", "login_port": None})
    assert spec.port == 5432
    assert spec.schema == "public"
    assert spec.connect_timeout == DEFAULT_CONNECT_TIMEOUT
    assert spec.host is None
    assert "host" not in spec.libpq_kwargs()
    assert spec.secrets == []


def test_resolve_env_file(tmp_path):
    env = tmp_path / ".env"
    env.write_text('NODE_ENV=production\nDATABASE_URL="postgresql://app:%s@db:5432/appdb?schema=tenant"\n' % SECRET_ENC)
    spec = resolve_connection({"env_file": str(env), "env_var": "DATABASE_URL"})
    assert spec.password == SECRET
    assert spec.schema == "tenant"
    assert spec.source == "DATABASE_URL in %s" % env


def test_resolve_env_file_custom_variable_and_default_variable(tmp_path):
    env = tmp_path / ".env"
    env.write_text("DATABASE_URL=postgresql://a@one/app\nMIGRATE_URL=postgresql://b@two/app\n")
    assert resolve_connection({"env_file": str(env), "env_var": "MIGRATE_URL"}).host == "two"
    assert resolve_connection({"env_file": str(env), "env_var": None}).host == "one"


def test_resolve_env_file_bad_url_error_names_source_not_password(tmp_path):
    env = tmp_path / ".env"
    env.write_text("DATABASE_URL=mysql://app:%s@db/app\n" % SECRET)
    with pytest.raises(PrismaOpsError) as info:
        resolve_connection({"env_file": str(env)})
    assert ("DATABASE_URL in %s" % env) in info.value.msg
    assert_no_secret(info.value.msg)


def test_resolve_database_url_wins_when_both_given(tmp_path):
    # The argspec makes these mutually exclusive; the helper itself prefers database_url.
    spec = resolve_connection({"database_url": "postgresql://u:p@url-host/app", "env_file": str(tmp_path / "missing")})
    assert spec.host == "url-host"


# --------------------------------------------------------------------------------------------
# url_for_tools round trip
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "postgresql://us%40er:p%40ss%2Fw%3Ard@db:6543/app%20db?schema=tenant&sslmode=require",
    "postgresql://u:p@[::1]:5433/app",
    "postgresql://u:p@/app?host=/var/run/postgresql",
    "postgresql://u@db/app",
])
def test_url_for_tools_round_trips(url):
    spec = parse_database_url(url)
    again = parse_database_url(spec.url_for_tools())
    for attr in ("host", "port", "user", "password", "dbname", "schema", "libpq_params"):
        assert getattr(again, attr) == getattr(spec, attr), attr
