#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: prisma_drift_report
short_description: Write the fleet reports of a drift check - JSON, JUnit XML, Prometheus textfile, Markdown, HTML
version_added: 1.0.0
description:
  - Takes the C(prisma_drift_check) result of every host (run it with C(delegate_to=localhost) and C(run_once), fed
    from C(hostvars)) and writes, into O(dest) - C(fleet.json) and C(hosts/<host>.json), C(junit.xml) (a test suite per
    host, a test case per check, for CI dashboards), C(prisma_drift.prom) (node_exporter textfile collector format),
    C(summary.md), and C(index.html), one self-contained page (inline CSS, no script, no external resource) with the
    fleet as a colour table and each host's details in a C(<details>) element.
  - A host with no result (it failed before the check or was skipped) or an unreachable one is reported as an error,
    never left out.
  - Every file is written to a temporary name beside it and renamed, so a reader never sees half a file.
  - With O(keep) above 0, each run goes into its own C(<dest>/<UTC timestamp>/) directory, C(<dest>/latest) points at
    the newest, and only the newest O(keep) run directories are kept.
author:
  - prisma_ops.migrate maintainers (@prisma-ops)
attributes:
  check_mode:
    support: full
    description: In check mode the reports are rendered and validated but not written; RV(paths) says where they would go.
  diff_mode:
    support: none
    description: Reports are generated output; there is no diff.
options:
  dest:
    description: The report directory on the machine that runs the module (normally the controller). Created when missing.
    type: path
    required: true
  results:
    description:
      - The C(prisma_drift_check) result of each host, by inventory host name. A failed or unreachable task result, or
        null, stands for a host that could not be checked.
    type: dict
    required: true
  fail_on:
    description:
      - Kinds of finding that make a host fail (the same kinds as C(prisma_drift_check)'s C(fail_on)). They colour a
        cell red in the HTML page, are JUnit failures, and set the C(prisma_drift_failing) gauge.
    type: list
    elements: str
    default: []
  formats:
    description: Which reports to write.
    type: list
    elements: str
    choices: [json, junit, prometheus, markdown, html]
    default: [json, junit, prometheus, markdown, html]
  keep:
    description: C(0) writes into O(dest) itself, replacing the previous run. Above 0, one directory per run and only the
      newest O(keep) are kept.
    type: int
    default: 0
  mode:
    description: Permissions of the files written, in octal. The reports hold no secret.
    type: str
    default: "0644"
  prometheus_path:
    description:
      - Also write the Prometheus textfile to this stable path, for example
        C(/var/lib/prometheus/node-exporter/prisma_drift.prom). It must end in C(.prom) for the textfile collector.
    type: path
  title:
    description: Title of the HTML and Markdown reports and name of the JUnit test suites element.
    type: str
    default: Prisma drift check
seealso:
  - module: prisma_ops.migrate.prisma_drift_check
"""

EXAMPLES = r"""
- name: Check every host
  prisma_ops.migrate.prisma_drift_check:
    env_file: /opt/app/repo/Backend/.env
    migrations_dir: /opt/app/repo/Backend/prisma/migrations
  register: drift

- name: Write the fleet reports on the controller
  prisma_ops.migrate.prisma_drift_report:
    dest: /var/lib/prisma_ops/drift
    results: "{{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars, 'drift'))) }}"
    fail_on: [failed, modified, schema]
    keep: 14
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
paths:
  description: Each written file by format (C(json), C(junit), C(prometheus), C(markdown), C(html)), C(hosts) (the
    directory of per-host JSON) and C(prometheus_textfile) when O(prometheus_path) is set.
  returned: success
  type: dict
run_dir:
  description: The directory this run's files went to (O(dest) itself when O(keep=0)).
  returned: success
  type: str
rotated:
  description: Run directories removed by the rotation.
  returned: success
  type: list
  elements: str
totals:
  description: Number of hosts in each state (C(ok), C(drift), C(failing), C(not_checked), C(error)) and C(hosts).
  returned: success
  type: dict
failing_hosts:
  description: Hosts with a finding of a O(fail_on) kind.
  returned: success
  type: list
  elements: str
failing_kinds_by_host:
  description: For each failing host, the O(fail_on) kinds it has.
  returned: success
  type: dict
lines:
  description: One line per host, for the play's output.
  returned: success
  type: list
  elements: str
"""

import datetime
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.prisma_ops.migrate.plugins.module_utils.drift_report import (
    FILES, FORMATS, RENDERERS, STATE_TEXT, build_fleet, run_directory, write_reports,
)
from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError
from ansible_collections.prisma_ops.migrate.plugins.module_utils.module_run import run_module


def parse_mode(text: str) -> int:
    try:
        mode = int(str(text), 8)
    except ValueError:
        raise PrismaOpsError("mode=%r is not an octal mode such as 0644" % (text,))
    if not 0 <= mode <= 0o777:
        raise PrismaOpsError("mode=%r is not a file permission between 0000 and 0777" % (text,))
    return mode


def run(module: AnsibleModule) -> dict:
    params = module.params
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
    if module.check_mode:
        for fmt in params["formats"]:
            RENDERERS[fmt](fleet)  # rendered, so check mode fails where a real run would
        run_dir = run_directory(params["dest"], params["keep"], datetime.datetime.fromisoformat(fleet["generated_at"]))
        out.update(run_dir=run_dir, paths={fmt: os.path.join(run_dir, FILES[fmt]) for fmt in params["formats"]})
        return out
    written = write_reports(fleet, params["dest"], params["formats"], params["keep"], mode, params["prometheus_path"])
    out.update(changed=True, paths=written["paths"], run_dir=written["run_dir"], rotated=written["rotated"])
    return out


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type="path", required=True),
            results=dict(type="dict", required=True),
            fail_on=dict(type="list", elements="str", default=[]),
            formats=dict(type="list", elements="str", choices=list(FORMATS), default=list(FORMATS)),
            keep=dict(type="int", default=0),
            mode=dict(type="str", default="0644"),
            prometheus_path=dict(type="path"),
            title=dict(type="str", default="Prisma drift check"),
        ),
        supports_check_mode=True,
    )
    run_module(module, run)


if __name__ == "__main__":
    main()
