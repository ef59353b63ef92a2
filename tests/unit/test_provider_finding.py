"""P3019 as a finding: migrations_dir.provider_finding, the history report (deploy_blocked, in_sync, summary), the
drift check's provider_mismatch kind and every drift report format that carries it.

What Prisma refuses was read from the real CLIs (6.19.3 and 7.10.1): see tests/integration/test_provider_mismatch.py
and the read_lockfile_provider table in test_migrations_dir.py."""

from __future__ import annotations

import datetime
import json
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.prisma_ops.migrate.plugins.module_utils import drift, drift_report
from ansible_collections.prisma_ops.migrate.plugins.module_utils.history import build_report
from ansible_collections.prisma_ops.migrate.plugins.module_utils.migrations_dir import (
    LocalMigration, MigrationsDir, provider_finding, read_lockfile_provider,
)

pytestmark = pytest.mark.unit

PATH = "/opt/app/prisma/migrations"


def history(rows=()):
    return {"schema_exists": True, "table_exists": True, "table_kind": "table", "table_finding": None,
            "rows": list(rows), "user_tables": [], "baseline_needed": False}


def folder(provider, lockfile_present=True):
    return MigrationsDir(path=PATH, migrations=[LocalMigration("20250101000000_init", PATH + "/x", script="SELECT 1;")],
                         provider=provider, lockfile_present=lockfile_present)


@pytest.mark.parametrize("provider, present", [("postgresql", True), (None, False), ("sqlite", False)])
def test_no_finding_for_postgresql_or_without_a_lockfile(provider, present):
    assert provider_finding(provider, present, PATH) is None


def test_a_sqlite_history_is_p3019_with_the_way_out():
    found = provider_finding("sqlite", True, PATH)
    assert set(found) == {"code", "lock_provider", "expected", "message"}
    assert (found["code"], found["lock_provider"], found["expected"]) == ("P3019", "sqlite", "postgresql")
    message = found["message"]
    assert message.startswith("prisma migrate deploy refuses with P3019")
    assert 'migration_lock.toml in %s names provider "sqlite"' % PATH in message
    assert "written for another database" in message
    assert "prisma migrate diff" in message and "migrate dev on a PostgreSQL database" in message
    assert message.endswith("never run prisma db push on production.")
    assert message.count(". ") == 0  # one sentence


@pytest.mark.parametrize("text", ['provider="postgresql"\n', "provider = 'postgresql'\n", "  provider = \"postgresql\"\n",
                                  "# nothing\n", ""])
def test_a_postgresql_line_prisma_cannot_read_says_to_write_it_exactly(text):
    """Refused by both CLIs (P3019) although the line means postgresql: the advice is to fix the line first."""
    provider = read_lockfile_provider(text)
    found = provider_finding(provider, True)
    assert found is not None and found["code"] == "P3019" and found["lock_provider"] == provider
    assert 'Prisma wants exactly provider = "postgresql"' in found["message"]
    assert "written for another database" not in found["message"]
    assert found["message"].endswith("never run prisma db push on production.")
    if provider is None:
        assert "migration_lock.toml has no line starting with provider" in found["message"]


def test_the_report_is_blocked_and_not_in_sync_and_says_p3019():
    report = build_report(history(), folder("sqlite"))
    assert report["provider_finding"] == provider_finding("sqlite", True, PATH)
    assert report["deploy_blocked"] is True and report["in_sync"] is False
    assert report["failed_migrations"] == []
    assert report["summary"].startswith('deploy blocked (P3019): migration_lock.toml names provider "sqlite", not '
                                        'postgresql')
    assert "never db push" in report["summary"]


def test_the_report_without_a_finding_is_unchanged():
    report = build_report(history(), folder("postgresql"))
    assert report["provider_finding"] is None and report["deploy_blocked"] is False
    assert build_report(history(), None)["provider_finding"] is None
    assert build_report(history(), folder(None, lockfile_present=False))["provider_finding"] is None


def test_drift_reports_provider_mismatch_first_after_the_relation():
    report = build_report(history(), folder("sqlite"))
    found = drift.history_findings(report)
    assert found[0] == {"kind": "provider_mismatch", "object": "sqlite",
                        "detail": report["provider_finding"]["message"]}
    assert drift.validate_kinds(["provider_mismatch"]) == ["provider_mismatch"]
    assert drift.KINDS.index("provider_mismatch") == drift.KINDS.index("history_relation") + 1
    assert drift.summarize(found, None).startswith("provider_mismatch: 1")


def _fleet(fail_on):
    report = build_report(history(), folder("sqlite"))
    found = drift.history_findings(report)
    result = {"checked_at": "2025-03-01T02:30:00+00:00", "summary": drift.summarize(found, None), "findings": found,
              "checks": {"history": {"status": "drift", "findings": found, "summary": report["summary"],
                                     "baseline_needed": False, "provider_finding": report["provider_finding"]}}}
    clean = {"checked_at": "2025-03-01T02:30:00+00:00", "summary": "no drift", "findings": [],
             "checks": {"history": {"status": "ok", "findings": [], "summary": "in sync", "baseline_needed": False}}}
    return drift_report.build_fleet({"sqlite-host": result, "fine-host": clean}, fail_on=fail_on,
                                    generated_at=datetime.datetime(2025, 3, 1, 2, 31, tzinfo=datetime.timezone.utc))


def test_every_report_format_carries_the_kind_and_its_message():
    fleet = _fleet(["provider_mismatch"])
    host = {h["host"]: h for h in fleet["hosts"]}["sqlite-host"]
    message = host["findings"][0]["detail"]
    assert host["fail"] is True and host["failing_kinds"] == ["provider_mismatch"] and host["status"] == "failing"
    assert fleet["failing_hosts"] == ["sqlite-host"]

    parsed = json.loads(drift_report.render_json(fleet))
    kinds = {h["host"]: h["kinds"] for h in parsed["hosts"]}
    assert kinds == {"fine-host": [], "sqlite-host": ["provider_mismatch", "pending"]}

    suites = {s.get("name"): s for s in ET.fromstring(drift_report.render_junit(fleet))}
    failure = suites["sqlite-host"].find("testcase[@name='history']/failure")
    assert failure.get("message") == "1 finding of a failing kind (provider_mismatch)"
    assert failure.text.splitlines()[0] == "[provider_mismatch] %s" % message
    assert suites["fine-host"].find("testcase[@name='history']/failure") is None

    prom = drift_report.render_prometheus(fleet).splitlines()
    assert "# TYPE prisma_drift_provider_mismatch gauge" in prom
    assert 'prisma_drift_provider_mismatch{host="sqlite-host"} 1' in prom
    assert 'prisma_drift_provider_mismatch{host="fine-host"} 0' in prom

    markdown = drift_report.render_markdown(fleet)
    assert "- `provider_mismatch` **(fails)** %s" % message in markdown

    page = drift_report.render_html(fleet)
    assert "<code class=\"kind\">provider_mismatch</code> <span class=\"fails\">fails</span> %s" % (
        message.replace('"', "&quot;")) in page


def test_without_fail_on_the_kind_is_drift_and_junit_passes_with_it_in_system_out():
    fleet = _fleet([])
    host = {h["host"]: h for h in fleet["hosts"]}["sqlite-host"]
    assert host["status"] == "drift" and host["fail"] is False
    case = {s.get("name"): s for s in ET.fromstring(drift_report.render_junit(fleet))}["sqlite-host"].find(
        "testcase[@name='history']")
    assert case.find("failure") is None and case.find("system-out").text.startswith("[provider_mismatch] ")
