# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The options that plugins/plugin_utils/controller_replay.py (the modules' action plugins) reads or sets, for the
    # modules that can have their replay done on the controller. replay_input stays in each module: what the module
    # does with it differs (prisma_migration_complete does nothing else).
    DOCUMENTATION = r"""
options:
  controller_replay:
    description:
      - When the module needs a replay of the migrations and it cannot run on the host (no O(shadow_url), no
        CREATEDB), replay them on the controller instead, in a throwaway PostgreSQL server that listens on a Unix
        socket only, with an unprivileged role (the scripts get no superuser rights on the controller). The result
        then uses that replay as it would one done on the host, and gives C(controller) as where it ran.
      - Needs PostgreSQL server binaries (C(/usr/lib/postgresql/*/bin/initdb) or C(/usr/pgsql-*/bin/initdb), the
        host's major version when installed, else the newest; elsewhere, the bin directory named in the controller's
        environment variable E(PRISMA_OPS_REPLAY_POSTGRES_BIN)), psycopg2 and pglast on the controller; without them
        the module's result is the one it gives when no replay can run, with a warning that says what to install.
      - The replay is cached on the controller (C(~/.cache/prisma_ops_migrate/replay), or the directory in the
        environment variable E(PRISMA_OPS_REPLAY_CACHE)), keyed by the server version, the schema and the sha256 of
        every script, so a fleet with one migrations folder pays for it once. The host sends its live schema
        snapshot, and the texts of the migrations the controller does not have yet.
      - Done by the action plugin of the same name; the module alone never replays on the controller.
    type: bool
    default: true
  replay_known_scripts:
    description:
      - Set by the action plugin (see O(controller_replay)); leave unset. The sha256 digests of the migration texts
        the controller already has.
    type: list
    elements: str
    default: []
"""
