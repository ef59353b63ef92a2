#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: prisma_project_info
short_description: Find a Prisma project's schema, migrations folder, config file and CLI, as the Prisma CLI does
version_added: 1.0.0
description:
  - Reads the project folder on the host, never runs anything in it and never connects to a database.
  - The config file is looked for in the order the Prisma 7.10 CLI uses - C(prisma7.config.*) and
    C(.config/prisma7.*) (read first, so a Prisma 7 project can live beside Prisma 8 as C(node_modules/.bin/prisma7)),
    then C(prisma.config.*), C(.config/prisma.*) and C(.config/prisma.config.*), each also as a folder's C(index.*),
    with the extensions C(js), C(ts), C(mjs), C(cjs), C(mts), C(cts).
  - The config's C(schema) and C(migrations.path) are read where the file fixes them - string literals, template
    literals without substitutions, and C(path.join) or C(path.resolve) of those (with C(__dirname) or
    C(import.meta.dirname)), relative to the config file's folder. A value the file computes otherwise (from an
    environment variable, a function, a spread object) fails with code C(project_layout_unknown) and the option to
    set, never a guess.
  - Without a config file - C(package.json)'s C(prisma.schema), else C(prisma/schema.prisma), else
    C(schema.prisma). The migrations folder, unless the config names it, is C(migrations) beside the schema.
  - The CLI is C(node_modules/.bin/prisma7) when the config is a C(prisma7) one and that binary is there,
    else C(node_modules/.bin/prisma). RV(deploy_command) passes C(--schema) only when no config names the schema or
    when O(schema_path) is given, since a Prisma 7 CLI reads its schema from the config.
author:
  - prisma_ops.migrate maintainers (@prisma-ops)
attributes:
  check_mode:
    support: full
    description: Read-only; check mode returns the same.
  diff_mode:
    support: none
    description: Read-only.
options:
  project_dir:
    description: The app folder (where C(package.json), C(node_modules) and the config or C(prisma/) are).
    type: path
    required: true
  schema_path:
    description: The schema file or folder, relative to O(project_dir) (or absolute), instead of what is found.
    type: str
  migrations_dir:
    description: The migrations folder, relative to O(project_dir) (or absolute), instead of what is found.
    type: str
"""

EXAMPLES = r"""
- name: Find where the app keeps its schema and migrations
  prisma_ops.migrate.prisma_project_info:
    project_dir: /srv/app
  register: project

- name: Read the history from the folder the CLI uses
  prisma_ops.migrate.prisma_migration_info:
    env_file: /srv/app/.env
    migrations_dir: "{{ project.migrations_dir }}"
"""

RETURN = r"""
project_dir:
  description: The project folder, absolute.
  returned: success
  type: str
config_file:
  description: The config file the CLI loads, absolute, or null when the project has none.
  returned: success
  type: str
  sample: /srv/app/prisma.config.ts
schema_path:
  description: The schema file (or folder of a multi-file schema), absolute. It may not exist (a default).
  returned: success
  type: str
  sample: /srv/app/db/schema.prisma
schema_source:
  description: How the schema path was found.
  returned: success
  type: str
  choices: [option, config, package.json, default]
migrations_dir:
  description: The migrations folder, absolute.
  returned: success
  type: str
  sample: /srv/app/db/migrations
migrations_source:
  description: How the migrations folder was found.
  returned: success
  type: str
  choices: [option, config, beside the schema]
migrations_dir_exists:
  description: Whether RV(migrations_dir) is a directory.
  returned: success
  type: bool
cli:
  description: The project's Prisma CLI binary (it may not exist when the app's dependencies are not installed).
  returned: success
  type: str
  sample: /srv/app/node_modules/.bin/prisma
deploy_command:
  description: The project's own C(prisma migrate deploy), as an argument list.
  returned: success
  type: list
  elements: str
  sample: [/srv/app/node_modules/.bin/prisma, migrate, deploy]
container_deploy_command:
  description: The same through C(npx), for a deploy that runs in the app's container (where this host's path of the
    binary means nothing).
  returned: success
  type: list
  elements: str
  sample: [npx, prisma, migrate, deploy]
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.prisma_ops.migrate.plugins.module_utils.module_run import run_module
from ansible_collections.prisma_ops.migrate.plugins.module_utils.prisma_project import discover


def run(module: AnsibleModule) -> dict:
    params = module.params
    layout = discover(params["project_dir"], params["schema_path"], params["migrations_dir"])
    result = layout.as_dict()
    result.update(changed=False, migrations_dir_exists=os.path.isdir(layout.migrations_dir),
                  deploy_command=layout.deploy_argv(schema_given=bool(params["schema_path"])),
                  container_deploy_command=layout.deploy_argv(schema_given=bool(params["schema_path"]), via_npx=True))
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=dict(project_dir=dict(type="path", required=True),
                                              schema_path=dict(type="str"), migrations_dir=dict(type="str")),
                           supports_check_mode=True)
    run_module(module, run)


if __name__ == "__main__":
    main()
