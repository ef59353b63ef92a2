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
    description:
      - Permissions of the files written, in octal. The reports carry the hosts' error messages and findings, so no
        mode that lets other users (the last digit) read or write them is accepted; C(0640) shares them with a group.
        Every text from a host is masked too (a URL's password in it becomes C(********)).
      - The Prometheus textfile (C(prisma_drift.prom), and O(prometheus_path)) holds only numbers and host names and is
        always written C(0644), so node_exporter, running as its own user, can read it.
    type: str
    default: "0600"
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.prisma_ops.migrate.plugins.module_utils.drift_report import ARGUMENT_SPEC, report
from ansible_collections.prisma_ops.migrate.plugins.module_utils.module_run import run_module


# Ansible runs this task through the action plugin of the same name, in the controller's own process (no module
# start-up per run); this module is the same code for a play that runs it elsewhere, and carries the documentation.
def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_module(module, lambda m: report(m.params, m.check_mode))


if __name__ == "__main__":
    main()
