"""The SQLSTATE advice table (errors.py) and resolve.transaction_failure: what was committed decides whether
"running again is safe" is said at all, and each class of failure gets its own next step."""

from __future__ import annotations

import pytest

from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import SQLSTATE_ADVICE, sqlstate_advice
from ansible_collections.prisma_ops.migrate.plugins.module_utils.resolve import (
    AT_COMMIT, BEFORE_COMMIT, COMMITTED, transaction_failure,
)

pytestmark = pytest.mark.unit


class Diag:
    def __init__(self, column_name=None):
        self.column_name = column_name


class DbError(Exception):
    """The two attributes transaction_failure reads from a psycopg2 error."""

    def __init__(self, text: str, pgcode=None, column=None):
        super().__init__(text)
        self.pgcode = pgcode
        self.diag = Diag(column)


def test_every_entry_is_a_code_or_a_class_and_formats():
    for key, text in SQLSTATE_ADVICE.items():
        assert len(key) in (2, 5) and key == key.upper()
        assert sqlstate_advice(key if len(key) == 5 else key + "000", column="c", table="t", user="u")
        assert "Running again is safe" not in text


def test_exact_code_before_its_class_and_unknown_is_none():
    assert "primary" in sqlstate_advice("25006")
    assert "out of a resource" in sqlstate_advice("53100")
    assert "connection to the server was lost" in sqlstate_advice("08006")
    assert sqlstate_advice("22012") is None and sqlstate_advice(None) is None


@pytest.mark.parametrize("code, column, needles", [
    ("25006", None, ("point the URL at the primary", "default_transaction_read_only")),
    ("23502", "tenant", ("column tenant of \"public\".\"_prisma_migrations\" is NOT NULL",)),
    ("57014", None, ("statement_timeout", "ALTER ROLE \"app\" SET statement_timeout")),
    ("25P03", None, ("ALTER ROLE \"app\" SET idle_in_transaction_session_timeout",)),
    ("57P01", None, ("the server ended the session",)),
    (None, None, ("connection to the server was lost", "idle_in_transaction_session_timeout")),
])
def test_before_commit_nothing_was_written_and_the_fix_comes_first(code, column, needles):
    error = transaction_failure(DbError("boom", code, column), BEFORE_COMMIT, "public", ["UPDATE"], user="app")
    assert "nothing was written" in error.msg and "Fix this first, then run again" in error.msg
    assert "Running again is safe" not in error.msg
    assert error.details["code"] == "transaction_failed" and error.details["sqlstate"] == code
    for needle in needles:
        assert needle in error.msg


def test_before_commit_without_advice_is_the_only_safe_to_run_again():
    error = transaction_failure(DbError("division by zero", "22012"), BEFORE_COMMIT, "public", [])
    assert error.msg.endswith("Running again is safe.") and "nothing was written" in error.msg


def test_a_server_error_at_commit_was_rolled_back():
    error = transaction_failure(DbError("deferred check", "23514"), AT_COMMIT, "public", ["INSERT"])
    assert error.details["code"] == "transaction_failed" and "nothing was written" in error.msg


@pytest.mark.parametrize("code", [None, "08006", "57P01", "25P03"])
def test_a_commit_without_an_answer_is_never_called_safe(code):
    error = transaction_failure(DbError("server closed the connection", code), AT_COMMIT, "public", ["INSERT"],
                                names=["20250102000000_broken"])
    assert error.details["code"] == "commit_unknown"
    assert "may or may not be committed" in error.msg and "20250102000000_broken" in error.msg
    assert "safe" not in error.msg and "nothing was written" not in error.msg


def test_after_commit_it_is_in_and_not_to_be_run_blindly():
    error = transaction_failure(DbError("connection reset", None), COMMITTED, "public", ["INSERT"])
    assert error.details["code"] == "read_back" and "was committed" in error.msg and "do not run again" in error.msg
