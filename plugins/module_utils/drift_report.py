# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet reports of a drift check run: JSON, JUnit XML, Prometheus textfile, Markdown, HTML.

Plain Python (no Ansible imports) so unit tests call the renderers directly. Input: one entry per host,
the prisma_drift_check result (or the failed / unreachable task result, or nothing at all). Everything
rendered is escaped for its format; the HTML page is self-contained (inline CSS, no script, no external
resource) so it can be mailed, archived or opened from a CI artefact store.

The reports carry the hosts' own words (error messages, finding details), so they are written 0600 by
default and never readable or writable by every user (mode 0640 for a group is allowed); every text
taken from a host goes through errors.mask too, so a URL password in it is masked. The Prometheus
textfile holds only numbers and host names, never a message: it stays 0644, for node_exporter.
"""

from __future__ import annotations

import datetime
import html
import json
import os
import re
import shutil
import tempfile
from xml.sax.saxutils import quoteattr, escape as xml_escape

from ansible_collections.prisma_ops.migrate.plugins.module_utils.drift import CHECKS, KINDS, format_age, validate_kinds
from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError, mask

FORMATS = ("json", "junit", "prometheus", "markdown", "html")
FILES = {"json": "fleet.json", "junit": "junit.xml", "prometheus": "prisma_drift.prom", "markdown": "summary.md",
         "html": "index.html"}
DEFAULT_MODE = 0o600
# Numbers and host names only (render_prometheus): readable by node_exporter's own user.
PROMETHEUS_MODE = 0o644
RUN_DIR_FORMAT = "%Y%m%dT%H%M%SZ"
RUN_DIR_RE = re.compile(r"^\d{8}T\d{6}Z(-\d+)?$")
# Cell states, worst first: the host's state is its worst cell.
STATES = ("error", "failing", "drift", "not_checked", "ok", "skipped")
STATE_TEXT = {"error": "ERROR", "failing": "FAIL", "drift": "DRIFT", "not_checked": "NOT CHECKED", "ok": "OK",
              "skipped": "skipped"}
_HISTORY_METRICS = (("failed", "failed_migrations", "Failed migrations (deploy blocked, P3009)."),
                    ("pending", "pending_migrations", "Migrations in the folder with no row yet."),
                    ("modified", "modified_migrations", "Applied migrations edited after apply."),
                    ("missing_locally", "missing_locally_migrations", "Applied migrations missing on disk."),
                    ("rolled_back", "rolled_back_migrations", "Rolled-back migrations that deploy will re-run."))


def safe_file_name(host: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", host).lstrip(".")
    return name or "_"


def _worst(states) -> str:
    states = list(states)
    for state in STATES:
        if state in states:
            return state
    return "skipped"


def host_record(host: str, result: dict | None, fail_on: list) -> dict:
    """One host's record for every renderer, from whatever the play left for it."""
    record: dict = {"host": host, "checks": {}, "findings": [], "summary": "", "checked_at": None, "connection": None}
    if not result:
        error = {"kind": "error", "object": None, "detail": "no result: the host failed or was skipped before the check"}
    elif result.get("unreachable"):
        error = {"kind": "unreachable", "object": None, "detail": "unreachable: %s" % (result.get("msg") or "no answer")}
    elif result.get("failed") or "findings" not in result:
        error = {"kind": "error", "object": None, "detail": "the check failed: %s" % (result.get("msg") or "no message")}
    else:
        error = None
    if error:
        record["findings"] = [error]
        for check in CHECKS:
            record["checks"][check] = {"status": "error", "findings": []}
        record["summary"] = error["detail"]
    else:
        record["checked_at"] = result.get("checked_at")
        record["connection"] = result.get("connection")
        record["summary"] = result.get("summary") or ""
        for check in CHECKS:
            data = dict(result.get("checks", {}).get(check) or {})
            if not data:
                data = {"status": "skipped", "findings": []}
            record["checks"][check] = data
            record["findings"] += data.get("findings") or []
    kinds = [k for k in KINDS if any(f["kind"] == k for f in record["findings"])]
    record["kinds"] = kinds
    record["failing_kinds"] = [k for k in kinds if k in fail_on]
    record["fail"] = bool(record["failing_kinds"])
    for check, data in record["checks"].items():
        status = data.get("status", "skipped")
        if status in ("drift", "not_checked") and any(f["kind"] in fail_on for f in data.get("findings") or ()):
            status = "failing"
        data["cell"] = status
    record["status"] = _worst(d["cell"] for d in record["checks"].values())
    if record["status"] == "skipped":
        record["status"] = "ok"
    record["metrics"] = _metrics(record, error is None)
    return record


def _metrics(record: dict, up: bool) -> dict:
    history = record["checks"].get("history", {})
    schema = record["checks"].get("schema", {})
    ops = record["checks"].get("operations", {})
    lock = ops.get("lock") or {}
    backup = ops.get("backup") or {}
    metrics = {"up": 1 if up else 0, "failing": 1 if record["fail"] else 0}
    if up and history.get("status") not in (None, "skipped"):
        for key, name, _help in _HISTORY_METRICS:
            metrics[name] = sum(1 for f in history.get("findings") or () if f["kind"] == key)
        metrics["baseline_needed"] = 1 if history.get("baseline_needed") else 0
        metrics["provider_mismatch"] = sum(1 for f in history.get("findings") or () if f["kind"] == "provider_mismatch")
    if up and schema.get("status") not in (None, "skipped"):
        metrics["schema_checked"] = 1 if schema.get("checked") else 0
        if schema.get("checked"):
            metrics["schema_differences"] = schema.get("count", len(schema.get("findings") or ()))
    if up and ops.get("status") not in (None, "skipped"):
        metrics["lock_held"] = 1 if lock.get("held") else 0
        if lock.get("held") and lock.get("age_seconds") is not None:
            metrics["lock_age_seconds"] = lock["age_seconds"]
        if backup.get("checked"):
            # None (no backup at all) is +Inf in Prometheus, so an alert on "age > X" fires for it too.
            metrics["backup_age_seconds"] = backup.get("age_seconds")
    return metrics


def _masked(value):
    """Every string of a host's record through errors.mask: a URL password a host's message carried is masked."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(item) for item in value]
    return value


def build_fleet(results: dict, fail_on=(), generated_at: datetime.datetime | None = None, title: str | None = None) -> dict:
    """{host: result} -> the fleet document every renderer takes."""
    fail_on = validate_kinds(list(fail_on))
    generated_at = generated_at or datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    hosts = [_masked(host_record(host, results[host], fail_on)) for host in sorted(results)]
    totals = {state: sum(1 for h in hosts if h["status"] == state) for state in STATES if state != "skipped"}
    totals["hosts"] = len(hosts)
    return {
        "tool": "prisma_ops.migrate.drift_check",
        "title": title or "Prisma drift check",
        "generated_at": generated_at.isoformat(),
        "fail_on": fail_on,
        "totals": totals,
        "failing_hosts": [h["host"] for h in hosts if h["fail"]],
        "hosts": hosts,
    }


# ---------------------------------------------------------------- JSON


def render_json(fleet: dict) -> str:
    return json.dumps(fleet, indent=2, default=str, allow_nan=False) + "\n"


def render_host_json(record: dict) -> str:
    return json.dumps(record, indent=2, default=str, allow_nan=False) + "\n"


# ---------------------------------------------------------------- JUnit XML


def _finding_lines(findings: list) -> str:
    return "\n".join("[%s] %s" % (f["kind"], f["detail"]) for f in findings)


def render_junit(fleet: dict) -> str:
    """A test suite per host, a test case per check: failure for findings of a fail_on kind, error when the
    host could not be checked, skipped when a check was not run or could not check; other findings pass with
    the findings in system-out, so dashboards show them without failing the build."""
    suites = []
    all_counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for host in fleet["hosts"]:
        cases = []
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for check in CHECKS:
            data = host["checks"][check]
            findings = data.get("findings") or []
            cell = data["cell"]
            body = ""
            if cell == "error":
                counts["errors"] += 1
                body = "<error message=%s type=\"error\">%s</error>" % (quoteattr(host["summary"]), xml_escape(host["summary"]))
            elif cell == "failing":
                counts["failures"] += 1
                failing = [f for f in findings if f["kind"] in fleet["fail_on"]]
                message = "%d finding%s of a failing kind (%s)" % (
                    len(failing), "s" if len(failing) != 1 else "", ", ".join(sorted({f["kind"] for f in failing})))
                body = "<failure message=%s type=\"drift\">%s</failure>" % (quoteattr(message),
                                                                            xml_escape(_finding_lines(findings)))
            elif cell in ("skipped", "not_checked"):
                counts["skipped"] += 1
                reason = "not run" if cell == "skipped" else (data.get("reason") or "not checked")
                body = "<skipped message=%s/>" % quoteattr("%s not checked: %s" % (check, reason))
            if findings and cell not in ("error",):
                body += "<system-out>%s</system-out>" % xml_escape(_finding_lines(findings))
            counts["tests"] += 1
            cases.append("    <testcase classname=%s name=%s time=\"0\">%s</testcase>" % (
                quoteattr("drift_check.%s" % host["host"]), quoteattr(check), body))
        for key in all_counts:
            all_counts[key] += counts[key]
        suites.append("  <testsuite name=%s tests=\"%d\" failures=\"%d\" errors=\"%d\" skipped=\"%d\" timestamp=%s>\n%s\n"
                      "  </testsuite>" % (quoteattr(host["host"]), counts["tests"], counts["failures"], counts["errors"],
                                          counts["skipped"], quoteattr(host["checked_at"] or fleet["generated_at"]),
                                          "\n".join(cases)))
    head = "<testsuites name=%s tests=\"%d\" failures=\"%d\" errors=\"%d\" skipped=\"%d\">" % (
        quoteattr(fleet["title"]), all_counts["tests"], all_counts["failures"], all_counts["errors"], all_counts["skipped"])
    return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n%s\n%s\n</testsuites>\n" % (head, "\n".join(suites))


# ---------------------------------------------------------------- Prometheus text format


_PROM_METRICS = (
    ("up", "1 when the host was checked, 0 when it failed or was unreachable."),
    ("failing", "1 when the host has a finding of a drift_check_fail_on kind."),
) + tuple((name, text) for _key, name, text in _HISTORY_METRICS) + (
    ("baseline_needed", "1 when the schema has tables but no _prisma_migrations (P3005)."),
    ("provider_mismatch", "1 when migration_lock.toml names another provider than postgresql (deploy refuses, P3019)."),
    ("schema_checked", "1 when the live schema was compared with a shadow replay, 0 when it could not be."),
    ("schema_differences", "Differences between the live schema and the replay of the migrations."),
    ("lock_held", "1 while Prisma's advisory lock 72707369 is held."),
    ("lock_age_seconds", "How long Prisma's advisory lock has been held."),
    ("backup_age_seconds", "Age of the newest verified pg_backup backup (+Inf when there is none)."),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _number(value) -> str:
    if value is None:
        return "+Inf"
    if isinstance(value, float):
        return repr(value)
    return str(int(value))


def render_prometheus(fleet: dict) -> str:
    """node_exporter textfile collector format: HELP, TYPE, then one sample per host."""
    lines = []
    for name, text in _PROM_METRICS:
        samples = [(h["host"], h["metrics"][name]) for h in fleet["hosts"] if name in h["metrics"]]
        if not samples:
            continue
        metric = "prisma_drift_" + name
        lines.append("# HELP %s %s" % (metric, text))
        lines.append("# TYPE %s gauge" % metric)
        for host, value in samples:
            lines.append("%s{host=\"%s\"} %s" % (metric, _label(host), _number(value)))
    stamp = datetime.datetime.fromisoformat(fleet["generated_at"]).timestamp()
    lines += ["# HELP prisma_drift_report_timestamp_seconds When the drift check report was written.",
              "# TYPE prisma_drift_report_timestamp_seconds gauge",
              "prisma_drift_report_timestamp_seconds %d" % int(stamp)]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- Markdown


def _md(text) -> str:
    return str(text if text is not None else "").replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ") \
        .replace("<", "&lt;").replace(">", "&gt;")


def render_markdown(fleet: dict) -> str:
    t = fleet["totals"]
    out = ["# %s" % _md(fleet["title"]), "",
           "Generated %s. %d host%s: %d ok, %d drift, %d failing, %d not checked, %d error. fail_on: %s." % (
               fleet["generated_at"], t["hosts"], "s" if t["hosts"] != 1 else "", t["ok"], t["drift"], t["failing"],
               t["not_checked"], t["error"], ", ".join(fleet["fail_on"]) or "nothing"), "",
           "| host | result | history | schema | operations | summary |", "|---|---|---|---|---|---|"]
    for h in fleet["hosts"]:
        cells = [_md(h["host"]), STATE_TEXT[h["status"]]] + [STATE_TEXT[h["checks"][c]["cell"]] for c in CHECKS]
        out.append("| %s |" % " | ".join(cells + [_md(h["summary"])]))
    for h in fleet["hosts"]:
        out += ["", "## %s: %s" % (_md(h["host"]), STATE_TEXT[h["status"]]), ""]
        if not h["findings"]:
            out.append("No drift.")
        for f in h["findings"]:
            failing = " **(fails)**" if f["kind"] in fleet["fail_on"] else ""
            out.append("- `%s`%s %s" % (f["kind"], failing, _md(f["detail"])))
        ops = h["checks"].get("operations") or {}
        extra = _ops_lines(ops)
        if extra:
            out += [""] + ["- %s" % _md(line) for line in extra]
    return "\n".join(out) + "\n"


def _ops_lines(ops: dict) -> list:
    lines = []
    lock = ops.get("lock")
    if lock is not None:
        if lock.get("held"):
            holder = lock.get("holder") or {}
            lines.append("Prisma's lock: held for %s by pid %s (%s)" % (format_age(lock.get("age_seconds")), holder.get("pid"),
                                                                        holder.get("application_name") or "no name"))
        else:
            lines.append("Prisma's lock: free")
    backup = ops.get("backup")
    if backup is not None:
        if not backup.get("checked"):
            lines.append("Backups: not checked (%s)" % backup.get("reason"))
        elif backup.get("path"):
            lines.append("Newest verified backup: %s, %s old" % (os.path.basename(backup["path"]),
                                                                 format_age(backup.get("age_seconds"))))
        else:
            lines.append("Newest verified backup: none")
    return lines


# ---------------------------------------------------------------- HTML

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;color:#1d232a;background:#fff}
h1{font-size:1.4em;margin:0 0 .3em}
p.meta{color:#555;margin:.2em 0 1em}
table.fleet{border-collapse:collapse;min-width:60%}
table.fleet th,table.fleet td{border:1px solid #cfd5db;padding:.35em .7em;text-align:left;vertical-align:top}
table.fleet th{background:#eef1f4}
td.cell{font-weight:600;text-align:center;white-space:nowrap}
.ok{background:#d7f5dd;color:#14532d}
.drift{background:#fff1c2;color:#713f12}
.failing{background:#fcd4d4;color:#7f1d1d}
.error{background:#7f1d1d;color:#fff}
.not_checked{background:#e4e7eb;color:#374151}
.skipped{background:#fff;color:#6b7280;font-weight:400}
tr.details td{border-top:none;background:#fafbfc}
details summary{cursor:pointer;color:#1e40af}
ul.findings{margin:.4em 0 .6em 1.2em;padding:0}
ul.findings li{margin:.15em 0}
code.kind{font-size:.85em;padding:0 .3em;border-radius:3px;background:#eef1f4}
span.fails{color:#b91c1c;font-weight:700}
.totals span{display:inline-block;margin-right:.6em;padding:.1em .5em;border-radius:3px}
"""


def _h(text) -> str:
    return html.escape(str(text if text is not None else ""), quote=True)


def render_html(fleet: dict) -> str:
    """One self-contained page: the fleet table in colour, each host's details in a <details> below its row."""
    t = fleet["totals"]
    rows = []
    for h in fleet["hosts"]:
        anchor = "host-" + safe_file_name(h["host"])
        cells = "".join("<td class=\"cell %s\" data-check=\"%s\">%s</td>" % (
            h["checks"][c]["cell"], c, STATE_TEXT[h["checks"][c]["cell"]]) for c in CHECKS)
        rows.append("<tr class=\"host\" id=\"%s\" data-host=\"%s\" data-status=\"%s\"><th scope=\"row\">%s</th>"
                    "<td class=\"cell %s\">%s</td>%s<td>%s</td></tr>" % (
                        _h(anchor), _h(h["host"]), h["status"], _h(h["host"]), h["status"], STATE_TEXT[h["status"]], cells,
                        _h(h["summary"])))
        rows.append("<tr class=\"details\"><td colspan=\"6\">%s</td></tr>" % _host_details(h, fleet["fail_on"]))
    totals = "".join("<span class=\"%s\">%d %s</span>" % (state, t[state], STATE_TEXT[state].lower())
                     for state in ("ok", "drift", "failing", "not_checked", "error"))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<title>%s</title><style>%s</style></head><body>\n"
            "<h1>%s</h1>\n<p class=\"meta\">Generated %s &middot; %d host%s &middot; fail_on: %s</p>\n"
            "<p class=\"totals\">%s</p>\n"
            "<table class=\"fleet\"><thead><tr><th>host</th><th>result</th><th>history</th><th>schema</th>"
            "<th>operations</th><th>summary</th></tr></thead>\n<tbody>\n%s\n</tbody></table>\n</body></html>\n") % (
        _h(fleet["title"]), _CSS, _h(fleet["title"]), _h(fleet["generated_at"]), t["hosts"], "s" if t["hosts"] != 1 else "",
        _h(", ".join(fleet["fail_on"]) or "nothing"), totals, "\n".join(rows))


def _host_details(h: dict, fail_on: list) -> str:
    parts = []
    for check in CHECKS if h["status"] != "error" else ():  # an error host has no per-check detail to show
        data = h["checks"][check]
        items = []
        for f in data.get("findings") or ():
            fails = " <span class=\"fails\">fails</span>" if f["kind"] in fail_on else ""
            items.append("<li><code class=\"kind\">%s</code>%s %s</li>" % (_h(f["kind"]), fails, _h(f["detail"])))
        if check == "operations":
            items += ["<li>%s</li>" % _h(line) for line in _ops_lines(data)]
        if check == "schema" and data.get("checked"):
            items.append("<li>compared with a replay of %d migration%s (%s, scope %s)%s</li>" % (
                data.get("replayed", 0), "s" if data.get("replayed", 0) != 1 else "", _h(data.get("database")),
                _h(data.get("scope")), ", list truncated" if data.get("truncated") else ""))
        if check == "history" and data.get("summary"):
            items.append("<li>%s</li>" % _h(data["summary"]))
        if not items:
            items.append("<li>%s</li>" % ("no drift" if data["cell"] == "ok" else STATE_TEXT[data["cell"]]))
        parts.append("<h3>%s: <span class=\"%s\">%s</span></h3><ul class=\"findings\">%s</ul>" % (
            check, data["cell"], STATE_TEXT[data["cell"]], "".join(items)))
    if h["status"] == "error":
        parts.insert(0, "<ul class=\"findings\">%s</ul>" % "".join(
            "<li><code class=\"kind\">%s</code> %s</li>" % (_h(f["kind"]), _h(f["detail"])) for f in h["findings"]))
    where = h.get("connection") or {}
    if where:
        parts.append("<p class=\"meta\">database %s on %s:%s, schema %s, checked %s</p>" % (
            _h(where.get("database")), _h(where.get("host")), _h(where.get("port")), _h(where.get("schema")),
            _h(h.get("checked_at"))))
    # Hosts that need attention start open, so the page (and a screenshot of it) shows why.
    opened = " open" if h["status"] in ("failing", "error") else ""
    return "<details%s><summary>%s: %d finding%s</summary>%s</details>" % (
        opened, _h(h["host"]), len(h["findings"]), "s" if len(h["findings"]) != 1 else "", "".join(parts))


RENDERERS = {"json": render_json, "junit": render_junit, "prometheus": render_prometheus, "markdown": render_markdown,
             "html": render_html}


# ---------------------------------------------------------------- writing


def write_atomic(path: str, text: str, mode: int) -> None:
    """Write beside the target, fsync, rename: a reader (node_exporter, a browser) never sees half a file."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def run_directory(dest: str, keep: int, generated_at: datetime.datetime) -> str:
    """Where this run's files go: dest itself (keep 0), or a new dest/<UTC stamp>/ (keep > 0)."""
    if keep <= 0:
        return dest
    stamp = generated_at.strftime(RUN_DIR_FORMAT)
    path = os.path.join(dest, stamp)
    suffix = 1
    while os.path.exists(path):
        suffix += 1
        path = os.path.join(dest, "%s-%d" % (stamp, suffix))
    return path


def rotate(dest: str, keep: int) -> list:
    """Remove the oldest run directories beyond `keep` (only names of our stamp pattern); return what went."""
    if keep <= 0:
        return []
    runs = sorted((n for n in os.listdir(dest) if RUN_DIR_RE.match(n) and os.path.isdir(os.path.join(dest, n))
                   and not os.path.islink(os.path.join(dest, n))), key=lambda n: (n[:16], int(n[17:] or 0)))
    removed = runs[:-keep] if len(runs) > keep else []
    for name in removed:
        shutil.rmtree(os.path.join(dest, name))
    return removed


def point_latest(dest: str, run_dir: str) -> None:
    link = os.path.join(dest, "latest")
    if os.path.lexists(link) and not os.path.islink(link):
        raise PrismaOpsError("%s exists and is not a symlink: move it away, drift reports keep a 'latest' link there" % link)
    tmp = os.path.join(dest, ".latest.%d" % os.getpid())
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(os.path.basename(run_dir), tmp)
    os.replace(tmp, link)


def write_reports(fleet: dict, dest: str, formats=FORMATS, keep: int = 0, mode: int = DEFAULT_MODE,
                  prometheus_path: str | None = None, per_host: bool = True) -> dict:
    """Write the chosen formats; returns {format: path} plus run_dir and rotated."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise PrismaOpsError("formats: unknown %s; valid formats are %s" % (", ".join(unknown), ", ".join(FORMATS)))
    if keep < 0:
        raise PrismaOpsError("keep must be 0 (write into dest) or the number of run directories to keep")
    generated_at = datetime.datetime.fromisoformat(fleet["generated_at"])
    try:
        os.makedirs(dest, exist_ok=True)
        run_dir = run_directory(dest, keep, generated_at)
        os.makedirs(run_dir, exist_ok=True)
        paths: dict = {}
        for fmt in formats:
            path = os.path.join(run_dir, FILES[fmt])
            write_atomic(path, RENDERERS[fmt](fleet), PROMETHEUS_MODE if fmt == "prometheus" else mode)
            paths[fmt] = path
        if per_host and "json" in formats:
            host_dir = os.path.join(run_dir, "hosts")
            os.makedirs(host_dir, exist_ok=True)
            for record in fleet["hosts"]:
                write_atomic(os.path.join(host_dir, safe_file_name(record["host"]) + ".json"), render_host_json(record), mode)
            paths["hosts"] = host_dir
        if prometheus_path:
            # The textfile collector reads one stable path; the run directory keeps its own copy.
            write_atomic(prometheus_path, render_prometheus(fleet), PROMETHEUS_MODE)
            paths["prometheus_textfile"] = prometheus_path
        rotated = []
        if keep > 0:
            point_latest(dest, run_dir)
            rotated = rotate(dest, keep)
    except OSError as exc:
        raise PrismaOpsError("cannot write the drift reports under %s: %s" % (dest, exc.strerror or exc))
    return {"paths": paths, "run_dir": run_dir, "rotated": rotated}


# The options of prisma_drift_report, shared by the module and its action plugin (the module documents them).
ARGUMENT_SPEC = dict(
    dest=dict(type="path", required=True),
    results=dict(type="dict", required=True),
    fail_on=dict(type="list", elements="str", default=[]),
    formats=dict(type="list", elements="str", choices=list(FORMATS), default=list(FORMATS)),
    keep=dict(type="int", default=0),
    mode=dict(type="str", default="0600"),
    prometheus_path=dict(type="path"),
    title=dict(type="str", default="Prisma drift check"),
)


def parse_mode(text: str) -> int:
    try:
        mode = int(str(text), 8)
    except ValueError:
        raise PrismaOpsError("mode=%r is not an octal mode such as 0600" % (text,))
    if not 0 <= mode <= 0o777:
        raise PrismaOpsError("mode=%r is not a file permission between 0000 and 0777" % (text,))
    if mode & 0o007:
        raise PrismaOpsError("mode=%s would let every user of this machine read or change the reports, which carry the "
                             "hosts' error messages: use 0600 (the default) or 0640 for a group; the Prometheus "
                             "textfile is written 0644 anyway, for node_exporter" % text)
    return mode


def report(params: dict, check_mode: bool = False) -> dict:
    """prisma_drift_report's whole work, from its validated options: the fleet built, the reports written (in check
    mode rendered only), and the task result."""
    mode = parse_mode(params["mode"])
    if params["keep"] < 0:
        raise PrismaOpsError("keep must be 0 (write into dest) or the number of run directories to keep")
    if params["prometheus_path"] and not params["prometheus_path"].endswith(".prom"):
        raise PrismaOpsError("prometheus_path %s must end in .prom: node_exporter's textfile collector reads only those"
                             % params["prometheus_path"])
    results = {str(host): (value if isinstance(value, dict) else None) for host, value in params["results"].items()}
    fleet = build_fleet(results, params["fail_on"], title=params["title"])
    lines = ["%s: %s - %s" % (h["host"], STATE_TEXT[h["status"]], h["summary"]) for h in fleet["hosts"]]
    out = {"changed": False, "totals": fleet["totals"], "failing_hosts": fleet["failing_hosts"], "lines": lines,
           "failing_kinds_by_host": {h["host"]: h["failing_kinds"] for h in fleet["hosts"] if h["fail"]}, "rotated": []}
    if check_mode:
        for fmt in params["formats"]:
            RENDERERS[fmt](fleet)  # rendered, so check mode fails where a real run would
        run_dir = run_directory(params["dest"], params["keep"], datetime.datetime.fromisoformat(fleet["generated_at"]))
        out.update(run_dir=run_dir, paths={fmt: os.path.join(run_dir, FILES[fmt]) for fmt in params["formats"]})
        return out
    written = write_reports(fleet, params["dest"], params["formats"], params["keep"], mode, params["prometheus_path"])
    out.update(changed=True, paths=written["paths"], run_dir=written["run_dir"], rotated=written["rotated"])
    return out
