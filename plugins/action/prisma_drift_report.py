# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""prisma_drift_report in the controller's own process.

The reports are always written on the controller, so shipping a module to localhost only added a Python start-up
(about 0.8 s a run, measured with bench/fleet_check.py). Same options, same code (module_utils.drift_report.report),
same result as the module, which documents it.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.prisma_ops.migrate.plugins.module_utils.drift_report import ARGUMENT_SPEC, report
from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError, mask


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False  # nothing runs on the host the task names

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # unused
        _validation, params = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        try:
            result.update(report(params, check_mode=bool(self._task.check_mode)))
        except PrismaOpsError as exc:
            # As the module's run_module would end it; write errors arrive here as PrismaOpsError too.
            result.update(dict(exc.details), failed=True, changed=False, msg=mask(exc.msg))
        return result
