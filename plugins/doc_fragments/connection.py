# -*- coding: utf-8 -*-
# Copyright: (c) prisma_ops.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The connection options every module shares; the argspec lives in module_utils/connection.py.
    DOCUMENTATION = r"""
options:
  database_url:
    description:
      - The database as a Prisma PostgreSQL URL, C(postgresql://USER:PASSWORD@HOST:PORT/DB?schema=SCHEMA).
      - Prisma-only parameters (C(schema), C(connection_limit), C(pool_timeout), C(pgbouncer), ...) are understood
        and not passed to libpq; C(sslmode), C(application_name), C(options) and other libpq parameters are;
        C(sslcert) is the CA certificate, as in Prisma.
      - Mutually exclusive with O(env_file) and the C(login_*) options.
    type: str
  env_file:
    description:
      - Path, on the managed host, of a C(.env) file that holds the URL in O(env_var). The file is read on the
        host and parsed like the Prisma CLI does (dotenv), never executed, so the secret does not pass through Ansible.
    type: path
  env_var:
    description:
      - The variable of O(env_file) that holds the URL.
    type: str
    default: DATABASE_URL
  login_host:
    description:
      - Host name, address, or Unix socket directory of the server, when not using a URL.
    type: str
  login_port:
    description:
      - Port of the server, when not using a URL.
    type: int
    default: 5432
  login_user:
    description:
      - User to connect as, when not using a URL.
    type: str
  login_password:
    description:
      - Password of O(login_user).
    type: str
  login_db:
    description:
      - Database to connect to, when not using a URL.
    type: str
  schema:
    description:
      - PostgreSQL schema that holds C(_prisma_migrations).
      - Defaults to the URL's C(?schema=) parameter, else C(public).
    type: str
  connect_timeout:
    description:
      - Seconds to wait for the server to answer.
      - Defaults to the URL's C(connect_timeout), else 10.
    type: int
requirements:
  - psycopg2 on the managed host (python3-psycopg2 or psycopg2-binary)
notes:
  - Passwords, and URLs that contain them, are never returned, logged, or put on a command line.
"""
