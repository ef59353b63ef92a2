# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error type module_utils raise: a message for the operator plus structured details."""

from __future__ import annotations

import json
import re
from urllib.parse import quote, quote_plus, unquote


class PrismaOpsError(Exception):
    """A failure the operator can act on. `msg` never holds a secret; `details` go into fail_json."""

    def __init__(self, msg: str, **details) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details


# ---------------------------------------------------------------- masking: the one helper for every secret

MASK = "********"
# Variables whose values are secrets: passwords (PASS, PWD: DB_PWD, PGPASS, PGPASSWORD...), tokens, keys, and URLs,
# which may carry a password. PWD and OLDPWD themselves are the shell's directories, not passwords.
SECRET_NAME = re.compile(r"PASS|PWD|SECRET|TOKEN|KEY|URL|CREDENTIAL|AUTH", re.I)
_DIRECTORY_NAMES = frozenset(("PWD", "OLDPWD"))
# Values shorter than this are not masked by name: masking "1" or "yes" everywhere would garble every output.
MIN_SECRET_LENGTH = 4
# scheme://user:PASSWORD@ - up to the last @ of the line, since a password may hold an unencoded @ or space.
_URL_PASSWORD = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@]*:)[^\n]*@")
_URL_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@]*:([^\n]*)@")
_PERCENT = re.compile(r"%[0-9A-F]{2}")


def is_secret_name(name) -> bool:
    """Whether a variable of this name holds a secret (see SECRET_NAME)."""
    name = str(name)
    return name.upper() not in _DIRECTORY_NAMES and bool(SECRET_NAME.search(name))


def url_password(value) -> str | None:
    """The password of a scheme://user:password@host URL, as written (it may be percent-encoded), or None."""
    match = _URL_USERINFO.match(str(value or "").strip())
    return match.group(1) if match and match.group(1) else None


def secret_values(mapping) -> list:
    """The secrets of an environment-like mapping: values of secret-looking names, and the password of any URL."""
    found = []
    for key, value in (mapping or {}).items():
        if value is None:
            continue
        value = str(value)
        if is_secret_name(key) and len(value) >= MIN_SECRET_LENGTH:
            found.append(value)
        password = url_password(value)
        if password:
            found += [password, unquote(password)]
    return list(dict.fromkeys(found))


def _forms(secret: str) -> list:
    """Every spelling of a secret that a tool may print: raw, percent-encoded (either case), JSON/repr-escaped."""
    forms = [secret, unquote(secret)]
    for encoded in (quote(secret, safe=""), quote(secret), quote_plus(secret)):
        forms += [encoded, _PERCENT.sub(lambda m: m.group(0).lower(), encoded)]
    forms += [json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1], repr(secret)[1:-1]]
    # A multi-line secret (a key, a password with a newline) may be printed one line at a time.
    forms += [line for line in secret.splitlines() if len(line.strip()) >= MIN_SECRET_LENGTH]
    return [form for form in forms if form]


def mask(text, secrets=()) -> str:
    """Text meant for output with every known secret (in any spelling) and every URL password replaced by MASK.

    The one masking helper of the collection: module results, error messages, warnings and report files.
    """
    if not text:
        return text
    text = str(text)
    forms = set()
    for secret in secrets or ():
        if secret:
            forms.update(_forms(str(secret)))
    # Longest first: a secret that is part of another (a password inside its URL) must not split the longer one.
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + "@", text)


# What to do about a database failure, by SQLSTATE (or its class, the first two characters): the one table every
# module's advice comes from. Each entry says what to change before running again; whether running again is safe
# at all depends on what was committed, which only the caller knows (resolve.transaction_failure).
SQLSTATE_ADVICE = {
    "25006": "the server accepts only reads (default_transaction_read_only is on for this role or database, or this "
             "is a hot standby): point the URL at the primary, or turn default_transaction_read_only off for the role",
    "23502": "column {column} of {table} is NOT NULL without a default: Prisma's table has no such column, so it was "
             "added by hand; give it a default or drop it (Prisma writes only its own columns)",
    "57014": "statement_timeout cancelled the statement: raise it for the role, e.g. ALTER ROLE {user} SET "
             "statement_timeout = '5min' (a new session picks it up), or find what held the statement up",
    "25P03": "idle_in_transaction_session_timeout ended the session: raise it for the role, e.g. ALTER ROLE {user} "
             "SET idle_in_transaction_session_timeout = '5min', or find what kept the transaction idle",
    "57P01": "the server ended the session (pg_terminate_backend or a fast shutdown): find who ended it "
             "(the server log) and that the server is up",
    "57P02": "the server crashed and restarted: check its log",
    "57P03": "the server is not accepting connections yet (starting up or shutting down): wait until it is up",
    "55P03": "a lock was not granted within lock_timeout: another session holds it; see pg_locks for who",
    "40001": "a serialization failure: another transaction changed the same rows; run again",
    "40P01": "a deadlock with another session: run again once it is done",
    "42501": "the database user lacks a privilege on {table}: connect as the app's user or GRANT it",
    "53": "the server is out of a resource (disk, memory or connections): free it, then run again",
    # Also a session the server ended without the client reading why (psycopg2 then has no SQLSTATE).
    "08": "the connection to the server was lost: the server may have ended the session (idle_in_transaction_session_"
          "timeout, pg_terminate_backend, a restart) or the network dropped; the server log says which, and SHOW "
          "idle_in_transaction_session_timeout shows this role's limit",
}


def sqlstate_advice(sqlstate: str | None, **names) -> str | None:
    """The advice for this SQLSTATE (exact code first, then its class), with {column}, {table}, {user} filled in."""
    if not sqlstate:
        return None
    text = SQLSTATE_ADVICE.get(sqlstate) or SQLSTATE_ADVICE.get(sqlstate[:2])
    if text is None:
        return None
    values = {"column": "?", "table": "the table", "user": "the_role"}
    values.update({k: v for k, v in names.items() if v})
    return text.format(**values)
