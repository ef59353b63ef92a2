# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""prisma_drift_check, with the schema replay on the controller for hosts that have no scratch database.

The module runs on the host as always. With controller_replay (the default), a host whose replay could not run there
(no CREATEDB, no shadow_url) sends its live snapshot and the folder's digests (and the texts the controller lacks);
the controller replays the folder once per content (cached: plugin_utils/controller_replay.py) and completes the
schema check, the findings and the verdict (drift.complete_schema_check). What the module documents.
"""

from __future__ import annotations

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.prisma_ops.migrate.plugins.module_utils.drift import complete_schema_check, summarize
from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError
from ansible_collections.prisma_ops.migrate.plugins.plugin_utils.controller_replay import (
    cache_dir, execute_asking_for_replay_input, replay_on_controller)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # unused
        args = self._task.args
        wanted = boolean(args.get("controller_replay", True), strict=False)
        module_result, material = execute_asking_for_replay_input(self, task_vars, wanted)
        result.update(module_result)
        if material is None:
            return result
        connection = result.get("connection") or {}
        schema = (result.get("checks") or {}).get("schema")
        try:
            replays = replay_on_controller(material, connection.get("schema") or "public",
                                           connection.get("server_version_num"), cache_dir())
        except (PrismaOpsError, OSError) as exc:
            note = getattr(exc, "msg", None) or str(exc)
            if schema is not None:
                schema["reason"] = "%s; no replay on the controller either: %s" % (schema["reason"], note)
                for finding in schema["findings"]:
                    finding["detail"] = "schema drift not checked: %s" % schema["reason"]
                result["summary"] = summarize(result["findings"], schema)
            result.setdefault("warnings", []).append("no replay on the controller: %s" % note)
            return result
        complete_schema_check(result, replays["folder"], material["live_snapshot"],
                              len(material["migrations"]["folder"]["scripts"]) - 1, args.get("fail_on") or [])
        return result
