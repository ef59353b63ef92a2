"""errors.mask, the one masking helper, attacked: passwords with #, %23, @, quotes, spaces and newlines, in every
spelling a tool may print them; a password that is also a piece of its URL; secret-looking variable names.

Each attack ends with the same check: no spelling of the secret is left in the text.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote, quote_plus

import pytest

from ansible_collections.prisma_ops.migrate.plugins.module_utils import drift_report, errors, module_run
from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import MASK, mask, secret_values

pytestmark = pytest.mark.unit

PASSWORDS = ["pa#ss-Word1", "pa%23ss-Word1", "p@ss@word1", "it's \"quoted\"1", "with spaces 1", "new\nline-pass1",
             "back\\slash-1", "tab\tpass-1", "\u00e9t\u00e9-pass-1"]


def lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def spellings(secret: str) -> set:
    """What a careless tool could print for a secret."""
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), json.dumps(secret)[1:-1],
             repr(secret)[1:-1], lower_hex(quote(secret, safe=""))}
    forms.add("".join(c if c.isalnum() else "%%%02x" % ord(c) if ord(c) < 128 else c for c in secret))
    return {f for f in forms if f}


def assert_no_secret(text: str, secret: str) -> None:
    for form in spellings(secret):
        assert form not in text, (form, text)


@pytest.mark.parametrize("password", PASSWORDS)
def test_every_spelling_of_a_password_is_masked(password):
    url = "postgresql://app:%s@db.internal:5432/app" % quote(password, safe="")
    text = "\n".join(["raw %s" % password, "url %s" % url, "json %s" % json.dumps({"p": password}),
                      "repr %r" % password, "plus %s" % quote_plus(password),
                      "lower %s" % lower_hex(quote(password, safe="")), "decoded url postgresql://app:%s@db/app" % password])
    masked = mask(text, [password])
    assert_no_secret(masked, password)
    assert MASK in masked and "db.internal:5432/app" in masked


def test_a_password_that_is_a_piece_of_its_url_leaves_no_piece_of_the_longer_form():
    # The password is also the user and the database name: every occurrence goes, longest spelling first.
    url = "postgresql://postgres:postgres@127.0.0.1:5432/postgres"
    masked = mask("failed: %s (user postgres)" % url, [url, "postgres"])
    assert "postgres" not in masked
    assert "127.0.0.1" not in masked or MASK in masked


def test_url_passwords_are_masked_without_knowing_them():
    # A host's message read on the controller (drift reports): no known secret, the URL's userinfo still goes.
    for line in ("cannot parse postgresql://app:S3cr3t@h/db", "x postgres://app:p@ss w0rd@h:5432/db?schema=a y",
                 "redis://:T0ken@cache:6379/0"):
        masked = mask(line)
        assert "S3cr3t" not in masked and "w0rd" not in masked and "T0ken" not in masked, masked
        assert MASK in masked


def test_masking_is_idempotent_and_keeps_what_is_not_secret():
    text = "cannot connect to db.internal:5432/app: password authentication failed for user 'app'"
    assert mask(text, ["Sup3rSecret"]) == text
    once = mask("postgresql://app:Sup3rSecret@db/app", ["Sup3rSecret"])
    assert mask(once, ["Sup3rSecret"]) == once == "postgresql://app:%s@db/app" % MASK


@pytest.mark.parametrize("name", ["DB_PWD", "PGPASS", "PGPASSWORD", "PASSWORD", "db_password", "MYSQL_PASS",
                                  "JWT_SECRET", "API_TOKEN", "AWS_SECRET_ACCESS_KEY", "SSH_KEY", "SHADOW_URL",
                                  "GIT_CREDENTIALS", "BASIC_AUTH"])
def test_secret_looking_names(name):
    assert errors.is_secret_name(name)
    assert secret_values({name: "hunter22"}) == ["hunter22"]


@pytest.mark.parametrize("name", ["PWD", "OLDPWD", "NODE_ENV", "PATH", "HOME", "LANG"])
def test_names_that_are_not_secrets(name):
    assert not errors.is_secret_name(name)


def test_secret_values_takes_the_password_of_any_url_in_both_spellings():
    values = secret_values({"CACHE": "redis://:c%40che-pw@cache:6379", "DB_PWD": "abc", "NOTE": "plain"})
    assert values == ["c%40che-pw", "c@che-pw"]  # a 3-character value is not masked by name (MIN_SECRET_LENGTH)


def test_modules_and_reports_use_the_one_helper():
    assert module_run.mask is errors.mask
    assert drift_report.mask is errors.mask
