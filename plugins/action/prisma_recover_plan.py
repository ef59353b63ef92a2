# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""prisma_recover_plan in the controller's own process: the plan is pure computation over a registered result, so
no module is shipped to the host. Same options, same code (module_utils.recovery_plan.plan), same result as the
module, which documents it."""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError, mask
from ansible_collections.prisma_ops.migrate.plugins.module_utils.recovery_plan import ARGUMENT_SPEC, plan


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False  # nothing runs on the host the task names

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # unused
        _validation, params = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        try:
            result.update(plan(params, check_mode=bool(self._task.check_mode)))
        except PrismaOpsError as exc:
            result.update(dict(exc.details), failed=True, changed=False, msg=mask(exc.msg))
        return result
