"""The drift check's plain-Python parts: findings from a history report, schema differences as findings,
kinds validation, and the five report renderers (parsed back, not just searched)."""

from __future__ import annotations

import datetime
import json
import os
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from ansible_collections.prisma_ops.migrate.plugins.module_utils import drift, drift_report
from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2025, 3, 1, 2, 30, tzinfo=datetime.timezone.utc)


def finding(kind, obj, detail):
    return {"kind": kind, "object": obj, "detail": detail}


def host_result(history=(), schema=None, ops=None):
    checks = {"history": {"status": "drift" if history else "ok", "findings": list(history), "summary": "s",
                          "baseline_needed": any(f["kind"] == "baseline_needed" for f in history)}}
    if schema is None:
        checks["schema"] = {"status": "ok", "checked": True, "count": 0, "findings": [], "replayed": 2,
                            "database": "temporary", "scope": "all"}
    elif schema == "not_checked":
        checks["schema"] = {"status": "not_checked", "checked": False, "reason": "no scratch database: no CREATEDB",
                            "findings": [finding("schema_not_checked", None, "schema drift not checked: no CREATEDB")]}
    else:
        checks["schema"] = {"status": "drift", "checked": True, "count": len(schema), "findings": schema,
                            "replayed": 2, "database": "shadow_url", "scope": "all"}
    checks["operations"] = ops or {"status": "ok", "findings": [], "lock": {"held": False, "age_seconds": None},
                                   "backup": {"checked": True, "path": "/b/prisma-app-x.dump", "age_seconds": 3600}}
    findings = [f for c in checks.values() for f in c["findings"]]
    return {"changed": False, "checks": checks, "findings": findings, "summary": drift.summarize(findings, checks["schema"]),
            "checked_at": NOW.isoformat(), "connection": {"database": "app", "host": "127.0.0.1", "port": 5432,
                                                          "schema": "public"}}


FLEET_INPUT = {
    "healthy": host_result(),
    "blocked <&> \"one\"": host_result(history=[finding("failed", "20240115000000_guardians",
                                                        "20240115000000_guardians: failed (deploy blocked)")]),
    "edited": host_result(history=[finding("modified", "20240101000000_init", "edited after apply")],
                          schema=[{"kind": "schema", "object_type": "column", "change": "extra",
                                   "object": "public.User.hand", "detail": "column public.User.hand is extra"}]),
    "noscratch": host_result(schema="not_checked"),
    "locked": host_result(ops={"status": "drift", "findings": [finding("lock", "pid 7", "held for 2h")],
                               "lock": {"held": True, "age_seconds": 7200, "holder": {"pid": 7}},
                               "backup": {"checked": True, "path": None, "age_seconds": None}}),
    "down": {"unreachable": True, "msg": "ssh: connect to host down port 22: Connection refused"},
    "broken": {"failed": True, "msg": "password authentication failed for user app"},
    "skipped": None,
}


@pytest.fixture
def fleet():
    return drift_report.build_fleet(FLEET_INPUT, fail_on=["failed", "schema"], generated_at=NOW)


def test_host_states_follow_fail_on(fleet):
    by = {h["host"]: h for h in fleet["hosts"]}
    assert by["healthy"]["status"] == "ok" and not by["healthy"]["fail"]
    assert by["blocked <&> \"one\""]["status"] == "failing" and by["blocked <&> \"one\""]["failing_kinds"] == ["failed"]
    assert by["edited"]["checks"]["history"]["cell"] == "drift"      # modified is not in fail_on
    assert by["edited"]["checks"]["schema"]["cell"] == "failing"
    assert by["noscratch"]["status"] == "not_checked" and not by["noscratch"]["fail"]
    assert by["locked"]["status"] == "drift"
    assert by["down"]["status"] == "error" and by["down"]["kinds"] == ["unreachable"]
    assert by["broken"]["kinds"] == ["error"] and "password authentication failed" in by["broken"]["summary"]
    assert by["skipped"]["status"] == "error"
    assert sorted(fleet["failing_hosts"]) == sorted(["blocked <&> \"one\"", "edited"])
    assert fleet["totals"] == {"error": 3, "failing": 2, "drift": 1, "not_checked": 1, "ok": 1, "hosts": 8}


def test_fail_on_with_an_unknown_kind_is_one_clear_error():
    with pytest.raises(PrismaOpsError, match=r"unknown kinds 'edited', 'nope'; valid kinds are history_relation, provider_mismatch, failed, pending"):
        drift_report.build_fleet({}, fail_on=["failed", "edited", "nope"])


def test_json_is_strict_and_round_trips(fleet):
    text = drift_report.render_json(fleet)
    data = json.loads(text, parse_constant=lambda name: pytest.fail("non-standard JSON constant %s" % name))
    assert data["generated_at"] == NOW.isoformat() and data["fail_on"] == ["failed", "schema"]
    assert [h["host"] for h in data["hosts"]] == sorted(FLEET_INPUT)
    hosts = {h["host"]: h for h in data["hosts"]}
    assert hosts["locked"]["metrics"]["backup_age_seconds"] is None and hosts["locked"]["metrics"]["lock_age_seconds"] == 7200
    assert hosts["down"]["metrics"] == {"up": 0, "failing": 0}
    assert json.loads(drift_report.render_host_json(hosts["edited"]))["failing_kinds"] == ["schema"]


def test_junit_parses_with_a_case_per_host_and_check(fleet):
    root = ET.fromstring(drift_report.render_junit(fleet))
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == set(FLEET_INPUT)
    assert int(root.get("tests")) == 3 * len(FLEET_INPUT)
    for suite in suites.values():
        assert [c.get("name") for c in suite.findall("testcase")] == ["history", "schema", "operations"]
    blocked = {c.get("name"): c for c in suites["blocked <&> \"one\""].findall("testcase")}
    assert blocked["history"].find("failure") is not None
    assert "20240115000000_guardians" in blocked["history"].find("failure").text
    assert blocked["schema"].find("failure") is None and blocked["schema"].find("skipped") is None
    edited = {c.get("name"): c for c in suites["edited"].findall("testcase")}
    assert edited["history"].find("failure") is None and "edited after apply" in edited["history"].find("system-out").text
    assert edited["schema"].find("failure") is not None
    noscratch = {c.get("name"): c for c in suites["noscratch"].findall("testcase")}
    assert "schema not checked: no scratch database: no CREATEDB" == noscratch["schema"].find("skipped").get("message")
    assert all(c.find("error") is not None for c in suites["down"].findall("testcase"))
    assert int(root.get("failures")) == 2 and int(root.get("errors")) == 9 and int(root.get("skipped")) == 1


PROM_SAMPLE = re.compile(r'^(prisma_drift_[a-z_]+)(\{host="(?:[^"\\\n]|\\["\\n])*"\})? (-?[0-9]+(\.[0-9]+)?|\+Inf|NaN)$')


def test_prometheus_lines_are_valid_and_carry_the_gauges(fleet):
    text = drift_report.render_prometheus(fleet)
    assert text.endswith("\n")
    typed, samples = set(), {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:]
            assert kind == "gauge" and name not in typed
            typed.add(name)
            continue
        match = PROM_SAMPLE.match(line)
        assert match, line
        assert match.group(1) in typed  # a sample follows its TYPE line
        samples[(match.group(1), match.group(2))] = match.group(3)
    assert samples[("prisma_drift_failed_migrations", '{host="blocked <&> \\"one\\""}')] == "1"
    assert samples[("prisma_drift_modified_migrations", '{host="edited"}')] == "1"
    assert samples[("prisma_drift_schema_differences", '{host="edited"}')] == "1"
    assert samples[("prisma_drift_schema_checked", '{host="noscratch"}')] == "0"
    assert ("prisma_drift_schema_differences", '{host="noscratch"}') not in samples  # not checked is not zero
    assert samples[("prisma_drift_lock_age_seconds", '{host="locked"}')] == "7200"
    assert samples[("prisma_drift_backup_age_seconds", '{host="locked"}')] == "+Inf"
    assert samples[("prisma_drift_backup_age_seconds", '{host="healthy"}')] == "3600"
    assert samples[("prisma_drift_up", '{host="down"}')] == "0"
    assert samples[("prisma_drift_failing", '{host="edited"}')] == "1"
    assert samples[("prisma_drift_report_timestamp_seconds", None)] == str(int(NOW.timestamp()))


def test_markdown_has_a_row_per_host_with_escaped_cells(fleet):
    text = drift_report.render_markdown(fleet)
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| host")]
    assert len(rows) == len(FLEET_INPUT)
    row = next(r for r in rows if r.startswith("| blocked"))
    assert row.startswith('| blocked &lt;&&gt; "one" |')  # < and > escaped: no raw HTML in a Markdown viewer
    assert re.split(r"(?<!\\)\|", row)[2].strip() == "FAIL"
    assert "`failed` **(fails)** 20240115000000_guardians: failed (deploy blocked)" in text
    assert "`modified` edited after apply" in text


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.hosts, self.text, self.external = [], [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "tr" and attrs.get("data-host"):
            self.hosts.append((attrs["data-host"], attrs["data-status"]))
        for key in ("src", "href"):
            if attrs.get(key) and not attrs[key].startswith("#"):
                self.external.append(attrs[key])

    def handle_data(self, data):
        self.text.append(data)


def test_html_is_self_contained_with_each_host_and_its_details(fleet):
    page = drift_report.render_html(fleet)
    parser = _Collect()
    parser.feed(page)
    assert dict(parser.hosts) == {h["host"]: h["status"] for h in fleet["hosts"]}
    assert parser.tags.count("details") == len(FLEET_INPUT)
    assert "script" not in parser.tags and "link" not in parser.tags and parser.external == []
    assert "<details open><summary>blocked &lt;&amp;&gt; &quot;one&quot;: 1 finding</summary>" in page
    assert "<details><summary>healthy: 0 findings</summary>" in page
    text = "".join(parser.text)
    assert "schema drift not checked: no CREATEDB" in text and "ssh: connect to host down" in text


def test_schema_differences_become_findings_and_a_table_carries_its_parts():
    differences = [
        {"kind": "column", "name": "public.User.hand", "difference": "unexpected", "expected": None,
         "actual": {"type": "text", "not_null": False, "default": None}},
        {"kind": "column", "name": "public.User.age", "difference": "changed",
         "expected": {"type": "integer", "not_null": True, "default": None, "identity": None, "generated": None},
         "actual": {"type": "bigint", "not_null": False, "default": "0", "identity": None, "generated": None}},
        {"kind": "table", "name": "public.Guardian", "difference": "missing", "expected": True, "actual": None},
        {"kind": "index", "name": "public.Guardian_pkey", "difference": "missing",
         "expected": {"table": "public.Guardian"}, "actual": None},
        {"kind": "constraint", "name": "public.Guardian.Guardian_pkey", "difference": "missing", "expected": {},
         "actual": None},
        {"kind": "enum", "name": "public.Role", "difference": "changed", "expected": ["A", "B"], "actual": ["A", "C"]},
    ]
    found = drift.describe_differences(differences)
    by = {(f["object_type"], f["object"], f["change"]): f["detail"] for f in found}
    assert by[("column", "public.User.hand", "extra")].endswith("(text)")
    assert by[("column", "public.User.age", "changed")] == (
        "column public.User.age: default none -> 0; nullability NOT NULL -> NULL; type integer -> bigint")
    assert by[("table", "public.Guardian", "missing")].endswith("(with its 1 constraint, 1 index)")
    assert ("index", "public.Guardian_pkey", "missing") not in by
    assert "label 'B' is in the migrations" in by[("enum_label", "public.Role", "missing")]
    assert "label 'C' is in the live schema" in by[("enum_label", "public.Role", "extra")]
    assert all(f["kind"] == "schema" for f in found) and len(found) == 5


def test_history_findings_cover_every_kind():
    report = {"provider_finding": {"code": "P3019", "lock_provider": "sqlite", "expected": "postgresql",
                                   "message": "deploy refuses with P3019"},
              "baseline_needed": True, "failed_migrations": ["b"], "pending": ["c"], "modified": ["a"],
              "missing_locally": ["z"], "rolled_back": ["d", "gone"], "will_deploy": ["d", "c"], "missing_scripts": [],
              "failures": [{"name": "b", "error": {"message": "relation \"X\" already exists", "sqlstate": "42P07"}}]}
    found = drift.history_findings(report)
    assert [(f["kind"], f["object"]) for f in found] == [
        ("provider_mismatch", "sqlite"), ("baseline_needed", None), ("failed", "b"), ("pending", "c"), ("modified", "a"),
        ("missing_locally", "z"), ("rolled_back", "d")]
    assert found[0]["detail"] == "deploy refuses with P3019"
    assert found[2]["detail"] == 'b: failed (deploy blocked, P3009): relation "X" already exists (SQLSTATE 42P07)'


@pytest.mark.parametrize("seconds,text", [(5, "5s"), (65, "1m 5s"), (3600, "1h"), (7320, "2h 2m"), (90000, "1d 1h"),
                                          (None, "an unknown time")])
def test_format_age(seconds, text):
    assert drift.format_age(seconds) == text


def test_write_reports_rotates_run_directories_and_points_latest(tmp_path, fleet):
    dest = str(tmp_path / "reports")
    made = []
    for day in range(4):
        fleet = dict(fleet, generated_at=(NOW + datetime.timedelta(days=day)).isoformat())
        out = drift_report.write_reports(fleet, dest, keep=2, mode=0o640, prometheus_path=str(tmp_path / "t.prom"))
        made.append(os.path.basename(out["run_dir"]))
    runs = sorted(n for n in os.listdir(dest) if drift_report.RUN_DIR_RE.match(n))
    assert runs == made[-2:]
    assert os.readlink(os.path.join(dest, "latest")) == made[-1]
    latest = os.path.join(dest, "latest")
    assert sorted(os.listdir(latest)) == sorted(list(drift_report.FILES.values()) + ["hosts"])
    assert len(os.listdir(os.path.join(latest, "hosts"))) == len(FLEET_INPUT)
    assert oct(os.stat(os.path.join(latest, "index.html")).st_mode & 0o777) == "0o640"
    assert (tmp_path / "t.prom").read_text().startswith("# HELP prisma_drift_up")
    assert not [n for n in os.listdir(latest) if n.startswith(".")]  # no temporary file left


# ---------------------------------------------------------------- issue 13: who may read the reports


def _modes(root: str) -> dict:
    found = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, root)] = os.stat(path).st_mode & 0o777
    return found


def test_reports_are_private_by_default_and_the_textfile_stays_readable(tmp_path, fleet):
    dest = str(tmp_path / "reports")
    (tmp_path / "node").mkdir()
    drift_report.write_reports(fleet, dest, prometheus_path=str(tmp_path / "node" / "prisma_drift.prom"))
    modes = _modes(dest)
    assert modes["prisma_drift.prom"] == 0o644
    assert {name: mode for name, mode in modes.items() if name != "prisma_drift.prom"} == {
        name: 0o600 for name in modes if name != "prisma_drift.prom"}
    assert len(modes) == len(drift_report.FILES) + len(FLEET_INPUT)
    assert os.stat(tmp_path / "node" / "prisma_drift.prom").st_mode & 0o777 == 0o644


@pytest.mark.parametrize("mode", ["0644", "0666", "0604", "0602", "0777", "0601"])
def test_modes_that_let_every_user_in_are_refused(mode):
    with pytest.raises(PrismaOpsError, match="every user of this machine"):
        drift_report.parse_mode(mode)


@pytest.mark.parametrize("mode, value", [("0600", 0o600), ("0640", 0o640), ("0400", 0o400), ("600", 0o600)])
def test_private_and_group_modes_are_accepted(mode, value):
    assert drift_report.parse_mode(mode) == value


def test_the_default_mode_option_is_private():
    assert drift_report.parse_mode(drift_report.ARGUMENT_SPEC["mode"]["default"]) == 0o600


def test_a_url_password_in_a_host_message_reaches_no_report(tmp_path):
    secret = "Zq7-s3cr3t"
    results = {"leaky": {"failed": True, "msg": "DATABASE_URL is malformed: postgresql://app:%s@db:5432/app" % secret},
               "fine": host_result(history=[finding("failed", "m", "m: failed, at postgres://u:%s@h/d" % secret)])}
    fleet = drift_report.build_fleet(results, ["failed"], generated_at=NOW)
    dest = tmp_path / "reports"
    drift_report.write_reports(fleet, str(dest))
    written = [p for p in dest.rglob("*") if p.is_file()]
    assert len(written) == len(drift_report.FILES) + 2
    for path in written:
        assert secret not in path.read_text(), path
    assert "postgresql://app:********@db:5432/app" in (dest / "fleet.json").read_text()
