#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: prisma_recover_plan
short_description: Decide what to do with each failed Prisma migration, from the evidence, before anything changes
version_added: 1.0.0
description:
  - Pure computation on the controller over a C(prisma_migration_info) result - connects to nothing, changes nothing.
    The recover role calls it twice - once to decide, once with the check-mode previews of the completions it chose.
  - One table decides the action from the evidence's verdict and O(partial_strategy) - C(applied) is resolved
    applied, C(not_applied) rolled back (the deploy then re-runs it), C(partial) completed (only its missing
    statements run, then it is resolved applied) unless the strategy is C(stop), C(unknown) stops.
  - The evidence's own C(recommended_action) can only make a step safer - a verdict whose evidence recommends a stop
    stops.
  - An operator's O(overrides) entry replaces the decision for that migration (C(applied), C(rolled_back) or
    C(complete)).
  - After a failed deploy attempt (O(failed_attempt)), it decides from the history read again whether another attempt
    follows, so no attempt is blind.
  - The host stops before any step when the history is not a plain table, when the migrations folder was written for
    another database provider (P3019), or when a baseline is needed (P3005) and O(baseline) does not mark a proven
    one.
author:
  - prisma_ops.migrate maintainers (@prisma-ops)
attributes:
  check_mode:
    support: full
    description: The same plan; its first line says that nothing will change.
  diff_mode:
    support: none
    description: Nothing changes.
options:
  before:
    description: The C(prisma_migration_info) result (with evidence) of the host.
    type: dict
    required: true
  overrides:
    description: Migration name to the action the operator chose - C(applied), C(rolled_back) or C(complete).
    type: dict
    default: {}
  partial_strategy:
    description:
      - What a C(partial) verdict does - C(proven) completes it with a proof required (the completion commits only if
        the result is identical to a clean apply), C(complete) completes it without requiring one, C(stop) stops.
    type: str
    default: proven
    choices: [proven, complete, stop]
  baseline:
    description: Mark a proven baseline (P3005) applied.
    type: bool
    default: false
  previews:
    description:
      - Migration name to the check-mode result of C(prisma_migration_complete) for each completion the first call
        named in RV(to_preview). Given, the plan is final - a refused preview stops its migration.
    type: dict
  deploy:
    description: Whether a deploy follows the resolves (the role's C(recover_deploy)).
    type: bool
    default: true
  deploy_command:
    description: The deploy command, for the printed plan.
    type: list
    elements: str
    default: []
  backup:
    description: Whether a backup is taken first, for the printed plan.
    type: bool
    default: true
  backup_dir:
    description: Where the backup goes, for the printed plan.
    type: str
    default: ""
  backup_reuse_within:
    description: How old a backup may be to be reused, for the printed plan.
    type: str
    default: ""
  host:
    description: The host's name, for the printed plan.
    type: str
    default: ""
  failed_attempt:
    description:
      - After a failed deploy attempt - C(result) (the failed C(prisma_migrate_deploy) result), C(attempt) (its number,
        from 1) and C(max_attempts). O(before) is then the history read again after that attempt, and the result says
        whether another attempt follows (RV(retry)) - with no failed row, while attempts remain; with a failed row,
        only when the error is one of the moment (Prisma P1001, P1002, P1008, P1017; SQLSTATE 40001, 40P01, 55P03,
        57014) and the new evidence says the migration left no effect (it is then resolved rolled back first,
        RV(to_roll_back)). Anything else stops, naming the error, since another attempt would only meet P3009.
    type: dict
seealso:
  - module: prisma_ops.migrate.prisma_migration_info
  - module: prisma_ops.migrate.prisma_migration_complete
"""

EXAMPLES = r"""
- name: Read the history and the evidence
  prisma_ops.migrate.prisma_migration_info:
    env_file: /srv/app/.env
    migrations_dir: /srv/app/prisma/migrations
  register: before

- name: Decide
  prisma_ops.migrate.prisma_recover_plan:
    before: "{{ before }}"
    partial_strategy: stop
    host: "{{ inventory_hostname }}"
  register: plan

- name: Print the plan
  ansible.builtin.debug:
    msg: "{{ plan.lines }}"
"""

RETURN = r"""
plan:
  description:
    - One step per failed migration (or per baseline migration) - C(name), C(verdict), C(reason), C(source)
      (C(evidence), C(override) or C(baseline)), C(action) (C(applied), C(rolled_back), C(complete) or C(stop)),
      C(proof) (for the completion module); a final plan's completions also carry C(statements) and C(proven).
  returned: success
  type: list
  elements: dict
stop:
  description: Why the host stops before any change, or an empty string.
  returned: success
  type: str
to_preview:
  description: The migrations to preview with C(prisma_migration_complete) in check mode before the final call.
  returned: success
  type: list
  elements: str
final:
  description: Whether the plan is final (no completion waits for its preview).
  returned: success
  type: bool
stopped:
  description: The migrations that stop.
  returned: success
  type: list
  elements: str
to_apply:
  description: The migrations to resolve applied.
  returned: success
  type: list
  elements: str
to_roll_back:
  description: The migrations to resolve rolled back (with O(failed_attempt), before the next attempt).
  returned: success
  type: list
  elements: str
to_complete:
  description: The migrations to complete.
  returned: success
  type: list
  elements: str
will_deploy:
  description: Whether a deploy follows.
  returned: success
  type: bool
retry:
  description: With O(failed_attempt) - whether another deploy attempt follows.
  returned: when O(failed_attempt) is given
  type: bool
attempt_error:
  description:
    - With O(failed_attempt) - what the attempt failed on - C(code) (the CLI's P-code, null when it printed none, as
      with a driver adapter), C(message) (the deploy's), and when it left a failed row C(migration), C(sqlstate) and
      C(database_message) from the row's log.
  returned: when O(failed_attempt) is given
  type: dict
lines:
  description: The plan as printed before anything changes (empty when the host stops before any step).
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.prisma_ops.migrate.plugins.module_utils.module_run import run_module
from ansible_collections.prisma_ops.migrate.plugins.module_utils.recovery_plan import ARGUMENT_SPEC, plan


# Ansible runs this task through the action plugin of the same name, in the controller's own process; this module is
# the same code for a play that runs it elsewhere, and carries the documentation.
def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_module(module, lambda m: plan(m.params, m.check_mode))


if __name__ == "__main__":
    main()
