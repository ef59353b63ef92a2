"""Running client programs in the app's or the database's container: argv forms, refusals, no secret on argv."""

from __future__ import annotations

import pytest

from ansible_collections.prisma_ops.migrate.plugins.module_utils import backup as bk
from ansible_collections.prisma_ops.migrate.plugins.module_utils.connection import parse_database_url
from ansible_collections.prisma_ops.migrate.plugins.module_utils.container import check_container_args, container_argv
from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError

pytestmark = pytest.mark.unit


def test_docker_exec_passes_variables_by_name_only():
    argv = container_argv(["docker", "exec"], "app", ["DATABASE_URL", "NODE_ENV"], workdir="/srv/app", user="node")
    assert argv == ["docker", "exec", "-e", "DATABASE_URL", "-e", "NODE_ENV", "-w", "/srv/app", "-u", "node", "app"]
    assert container_argv(["docker", "compose", "exec", "-T"], "db", [], stdin=True) == [
        "docker", "compose", "exec", "-T", "-i", "db"]


@pytest.mark.parametrize("name", ["", "-it", "db;rm -rf /", "a b", "../db", "$(id)"])
def test_a_container_name_that_is_not_one_is_refused(name):
    with pytest.raises(PrismaOpsError, match="is not a container or service name"):
        check_container_args(name, ["docker", "exec"])


def test_an_empty_exec_command_is_refused():
    with pytest.raises(PrismaOpsError, match="container_exec must be"):
        check_container_args("db", [])


def test_directory_backups_cannot_stream_out_of_a_container():
    with pytest.raises(PrismaOpsError, match="format=directory cannot be streamed out of container db"):
        bk.BackupOptions.from_params({"backup_dir": "/b", "format": "directory", "container": "db"})
    opts = bk.BackupOptions.from_params({"backup_dir": "/b", "container": "db", "container_exec": ["podman", "exec"]})
    assert opts.container == "db" and opts.container_exec == ["podman", "exec"]


def test_pg_dump_in_a_container_writes_to_stdout_and_restores_from_stdin():
    spec = parse_database_url("postgresql://app:s3cret@127.0.0.1:25437/shop")
    opts = bk.BackupOptions.from_params({"backup_dir": "/b", "container": "shop-db"})
    tools = {"pg_dump": "pg_dump", "pg_restore": "pg_restore", "psql": "psql", "container": "shop-db",
             "container_exec": ["docker", "exec"]}
    dump = bk.in_container(tools, ["PGPASSWORD"]) + bk.pg_dump_argv(tools, opts, spec, None, "00000003-1")
    assert dump[:6] == ["docker", "exec", "-e", "PGPASSWORD", "shop-db", "pg_dump"]
    assert not any(a.startswith("--file") for a in dump) and "--snapshot=00000003-1" in dump
    restore = bk.restore_command("custom", "/b/prisma-shop-x.dump", tools, spec, "shop", None)
    assert restore.startswith("docker exec -i -e PGPASSWORD shop-db pg_restore --host=127.0.0.1 --port=25437 ")
    assert restore.endswith("--single-transaction < /b/prisma-shop-x.dump")
    for text in (" ".join(dump), restore):
        assert "s3cret" not in text
    # On the host itself nothing changes: no prefix, the file named on the command line.
    assert bk.in_container({"pg_dump": "pg_dump"}, ["PGPASSWORD"]) == []
