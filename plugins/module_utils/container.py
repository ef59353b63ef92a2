# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running a program inside the app's or the database's container (docker exec, docker compose exec).

Used where the host runs the app and PostgreSQL in containers: pg_dump and pg_restore run in the
database's container, the deploy command in the app's. Secrets reach the program as `-e NAME`
(the CLI copies the value from its own environment), never as `-e NAME=value` on a command line.
"""

from __future__ import annotations

import re

from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError

DEFAULT_CONTAINER_EXEC = ("docker", "exec")
CONTAINER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_container_args(container: str, container_exec: list) -> None:
    """A container (or compose service) name and the exec command that reaches it, or one clear error."""
    if not CONTAINER_NAME_RE.match(container):
        raise PrismaOpsError("container %r is not a container or service name (letters, digits, '_', '.', '-')"
                             % container)
    if not container_exec or not all(isinstance(a, str) and a for a in container_exec):
        raise PrismaOpsError("container_exec must be the command that runs a program in the container, for example "
                             "[docker, exec] or [docker, compose, -f, /opt/app/compose.yml, exec, -T]")


def container_argv(container_exec: list, container: str, env_names: list, workdir: str | None = None,
                   user: str | None = None, stdin: bool = False) -> list:
    """`docker exec [-i] [-e NAME]... [-w DIR] [-u USER] CONTAINER`: each -e names a variable of this process's
    environment, whose value the CLI passes on, so no secret is ever on a command line."""
    argv = list(container_exec)
    if stdin:
        argv.append("-i")
    for name in env_names:
        argv += ["-e", name]
    if workdir:
        argv += ["-w", workdir]
    if user:
        argv += ["-u", user]
    return argv + [container]
