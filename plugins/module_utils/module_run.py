# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How every module of the collection ends: its result, or one clear failure, never a traceback.

A PrismaOpsError becomes fail_json with its message and details; a psycopg2 error that escaped
(a session terminated while reading, a server gone mid-run) becomes one line saying what was not
done. Every message is masked (errors.mask) of the module's no_log values (passwords, URLs) once more.
"""

from __future__ import annotations

from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError, mask


def run_module(module, run, defaults: dict | None = None, not_done: str = "nothing was changed") -> None:
    """exit_json(**run(module)), or fail_json with `defaults` (e.g. changed=False, resolved=[]) under the details.

    `not_done` completes "database error, ...: <the server's words>" for a stray psycopg2 error.
    """
    defaults = dict(defaults or {}, changed=False)
    try:
        result = run(module)
    except PrismaOpsError as exc:
        details = dict(defaults, **exc.details)
        module.fail_json(msg=mask(exc.msg, list(module.no_log_values)), **details)
    except Exception as exc:  # pylint: disable=broad-except
        if not type(exc).__module__.startswith("psycopg2"):
            raise
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        module.fail_json(msg="database error, %s: %s" % (not_done, mask(text, list(module.no_log_values))),
                         **dict(defaults, code="database_error"))
    module.exit_json(**result)
