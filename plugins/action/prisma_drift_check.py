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

from ansible_collections.prisma_ops.migrate.plugins.module_utils.drift import complete_schema_check, summarize
from ansible_collections.prisma_ops.migrate.plugins.plugin_utils.controller_replay import ControllerReplayAction


class ActionModule(ControllerReplayAction):

    def replayed(self, result, material, judged, task_vars):
        complete_schema_check(result, judged["folder"], material["live_snapshot"],
                              len(material["migrations"]["folder"]["scripts"]) - 1, self._task.args.get("fail_on") or [])
        return result

    def not_replayed(self, result, material, note, task_vars):
        schema = (result.get("checks") or {}).get("schema")
        if schema is not None:
            schema["reason"] = "%s; no replay on the controller either: %s" % (schema["reason"], note)
            for finding in schema["findings"]:
                finding["detail"] = "schema drift not checked: %s" % schema["reason"]
            result["summary"] = summarize(result["findings"], schema)
        result.setdefault("warnings", []).append("no replay on the controller: %s" % note)
        return result
