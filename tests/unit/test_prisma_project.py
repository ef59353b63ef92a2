"""Project discovery (module_utils/prisma_project.py) over the config files real Prisma projects write."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError
from ansible_collections.prisma_ops.migrate.plugins.module_utils.prisma_project import discover, read_config, tokens

HEADER = "import 'dotenv/config'\nimport path from 'node:path'\nimport { defineConfig, env } from 'prisma/config'\n\n"

# (config text, schema relative to the project, migrations relative to the project)
LITERAL_CONFIGS = [
    # Prisma 7's own init template.
    (HEADER + "export default defineConfig({\n  schema: 'prisma/schema.prisma',\n  migrations: {\n"
     "    path: 'prisma/migrations',\n    seed: 'tsx prisma/seed.ts',\n  },\n  datasource: {\n"
     "    url: env('DATABASE_URL'),\n  },\n})\n", "prisma/schema.prisma", "prisma/migrations"),
    # A non-default layout; double quotes, trailing commas, a URL with // in a string.
    (HEADER + 'export default defineConfig({\n  datasource: { url: "postgresql://u@h/db" },\n  schema: "db/schema.prisma",\n'
     '  migrations: { path: "db/migrations", },\n});\n', "db/schema.prisma", "db/migrations"),
    # path.join of literals, as Prisma's docs write it.
    (HEADER + "export default defineConfig({\n  schema: path.join('src', 'prisma', 'schema.prisma'),\n"
     "  migrations: { path: path.join('src', 'prisma', 'migrations') },\n})\n",
     "src/prisma/schema.prisma", "src/prisma/migrations"),
    # path.resolve(__dirname, ...) and a template literal without substitutions.
    (HEADER + "export default defineConfig({\n  schema: path.resolve(__dirname, 'apps/api/schema.prisma'),\n"
     "  migrations: { path: `apps/api/migrations` },\n})\n", "apps/api/schema.prisma", "apps/api/migrations"),
    # A plain object with `satisfies`, quoted keys, comments that name other paths.
    ("import type { PrismaConfig } from 'prisma'\n// schema: 'old/schema.prisma'\n/* migrations: { path: 'x' } */\n"
     "export default {\n  'schema': 'database/schema.prisma', // moved in 2025\n  \"migrations\": { 'path': 'database/m' },\n"
     "} satisfies PrismaConfig\n", "database/schema.prisma", "database/m"),
    # CommonJS.
    ("const { defineConfig } = require('prisma/config')\nmodule.exports = defineConfig({ schema: 'prisma/app.prisma' })\n",
     "prisma/app.prisma", "prisma/migrations"),
    ("module.exports = {\n  schema: 'x/schema.prisma',\n}\n", "x/schema.prisma", "x/migrations"),
    # A config object declared first, then exported; migrations not named: beside the schema.
    (HEADER + "const config = defineConfig({ schema: 'db/schema.prisma', datasource: { url: env('DATABASE_URL') } })\n"
     "export default config\n", "db/schema.prisma", "db/migrations"),
    # A multi-file schema folder: its migrations are inside it.
    (HEADER + "export default defineConfig({ schema: 'prisma/schema' })\n", "prisma/schema", "prisma/schema/migrations"),
    # No schema key: Prisma's default; views/typedSql paths are not the migrations path.
    (HEADER + "export default defineConfig({\n  views: { path: 'db/views' },\n  typedSql: { path: 'db/sql' },\n"
     "  migrations: { seed: 'node seed.js' },\n  datasource: { url: env('DATABASE_URL') },\n})\n",
     "prisma/schema.prisma", "prisma/migrations"),
    # An adapter function with its own `schema` variable and a nested `path`: not the config's keys.
    (HEADER + "export default defineConfig({\n  schema: 'db/schema.prisma',\n  async adapter() {\n"
     "    const schema = 'other'; return { path: 'nope', schema }\n  },\n  migrations: { path: 'db/migrations' },\n})\n",
     "db/schema.prisma", "db/migrations"),
]

COMPUTED_CONFIGS = [
    ("schema", "export default defineConfig({ schema: process.env.PRISMA_SCHEMA ?? 'prisma/schema.prisma' })\n",
     "process.env.PRISMA_SCHEMA"),
    ("schema", "export default defineConfig({ schema: path.join(process.cwd(), 'db') })\n",
     "(path.join(process.cwd(), 'db'))"),
    ("schema", "export default defineConfig({ schema: process.env.PRISMA_SCHEMA ??\n    'prisma/schema.prisma' })\n",
     "(process.env.PRISMA_SCHEMA ?? 'prisma/schema.prisma')"),
    ("schema", "const schema = 'db/schema.prisma'\nexport default defineConfig({ schema })\n", "schema"),
    ("schema", "export default defineConfig({ schema: `${root}/schema.prisma` })\n", "${root}"),
    ("schema", "export default defineConfig({ ...base, datasource: { url: env('DATABASE_URL') } })\n", "base"),
    ("schema", "export default defineConfig(() => ({ schema: 'db/schema.prisma' }))\n", "exported config"),
    ("migrations", "export default defineConfig({ schema: 'db/schema.prisma', migrations: { path: dir } })\n", "dir"),
    ("migrations", "export default defineConfig({ schema: 'db/schema.prisma', migrations: shared.migrations })\n",
     "shared.migrations"),
]


def project(tmp_path: Path, config: str | None = None, name: str = "prisma.config.ts", files=(), package=None) -> Path:
    root = tmp_path / "app"
    root.mkdir(parents=True)
    if config is not None:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(config)
    for path in files:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("")
    if package is not None:
        (root / "package.json").write_text(json.dumps(package))
    return root


@pytest.mark.parametrize("config,schema,migrations", LITERAL_CONFIGS)
def test_literal_config_values_are_read_relative_to_the_config(tmp_path, config, schema, migrations):
    root = project(tmp_path, config)
    layout = discover(str(root))
    assert layout.config_file == str(root / "prisma.config.ts")
    assert layout.schema_path == str(root / schema)
    assert layout.migrations_dir == str(root / migrations)
    # The CLI reads the schema from the config: no --schema.
    assert layout.deploy_argv() == [str(root / "node_modules" / ".bin" / "prisma"), "migrate", "deploy"]


@pytest.mark.parametrize("what,config,shown", COMPUTED_CONFIGS)
def test_a_computed_value_is_refused_with_the_option_to_set(tmp_path, what, config, shown):
    root = project(tmp_path, HEADER + config)
    with pytest.raises(PrismaOpsError) as raised:
        discover(str(root))
    assert raised.value.details["code"] == "project_layout_unknown"
    assert shown in raised.value.msg and "prisma.config.ts computes" in raised.value.msg
    assert "recover_migrations_dir" in raised.value.msg and "Nothing was changed" in raised.value.msg
    if what == "schema":
        assert "recover_schema_path" in raised.value.msg
    # Given by the operator, nothing is computed any more.
    given = discover(str(root), schema_path="db/schema.prisma", migrations_dir="db/migrations")
    assert given.migrations_dir == str(root / "db" / "migrations") and given.schema_source == "option"
    assert given.deploy_argv(schema_given=True)[-2:] == ["--schema", os.path.join("db", "schema.prisma")]


def test_without_a_config_package_json_then_the_defaults(tmp_path):
    root = project(tmp_path, package={"name": "app", "prisma": {"schema": "server/db/schema.prisma", "seed": "x"}})
    layout = discover(str(root))
    assert layout.config_file is None and layout.schema_source == "package.json"
    assert layout.migrations_dir == str(root / "server" / "db" / "migrations")
    assert layout.deploy_argv()[1:] == ["migrate", "deploy", "--schema", os.path.join("server", "db", "schema.prisma")]

    root = project(tmp_path / "b", files=["schema.prisma"], package={"name": "app"})
    assert discover(str(root)).schema_path == str(root / "schema.prisma")
    assert discover(str(root)).migrations_dir == str(root / "migrations")

    root = project(tmp_path / "c", files=["prisma/schema.prisma", "schema.prisma"])
    assert discover(str(root)).schema_path == str(root / "prisma" / "schema.prisma")
    # Nothing there: Prisma's first default, so the later "does not exist" names the usual place.
    root = project(tmp_path / "d", package=["not", "an", "object"])
    layout = discover(str(root))
    assert layout.schema_source == "default" and layout.migrations_dir == str(root / "prisma" / "migrations")


def test_config_file_order_and_the_prisma7_binary(tmp_path):
    root = project(tmp_path, "export default defineConfig({ schema: 'six/schema.prisma' })\n")
    (root / "prisma7.config.mjs").write_text("export default defineConfig({ schema: 'seven/schema.prisma' })\n")
    (root / ".config").mkdir()
    (root / ".config" / "prisma.ts").write_text("export default defineConfig({ schema: 'hidden.prisma' })\n")
    layout = discover(str(root))
    assert layout.config_file == str(root / "prisma7.config.mjs") and layout.schema_path == str(root / "seven" / "schema.prisma")
    assert layout.cli == str(root / "node_modules" / ".bin" / "prisma")  # no prisma7 binary installed
    (root / "node_modules" / ".bin").mkdir(parents=True)
    (root / "node_modules" / ".bin" / "prisma7").write_text("")
    assert discover(str(root)).cli == str(root / "node_modules" / ".bin" / "prisma7")
    (root / "prisma7.config.mjs").unlink()
    assert discover(str(root)).cli == str(root / "node_modules" / ".bin" / "prisma")
    assert discover(str(root)).schema_path == str(root / "six" / "schema.prisma")
    (root / "prisma.config.ts").unlink()
    # .config/prisma.ts: paths relative to its own folder.
    assert discover(str(root)).schema_path == str(root / ".config" / "hidden.prisma")


def test_the_operator_s_paths_win_and_a_missing_project_is_one_clear_error(tmp_path):
    root = project(tmp_path, "export default defineConfig({ schema: 'db/schema.prisma' })\n")
    layout = discover(str(root), migrations_dir=str(tmp_path / "elsewhere"))
    assert layout.migrations_dir == str(tmp_path / "elsewhere") and layout.migrations_source == "option"
    assert layout.schema_source == "config"
    with pytest.raises(PrismaOpsError) as raised:
        discover(str(tmp_path / "absent"))
    assert "is not a directory on this host" in raised.value.msg


@pytest.mark.parametrize("text", [
    "", "export default", "export default {", "defineConfig(", "export default defineConfig({ schema: })",
    "export default defineConfig({ schema: 'unterminated })", "\0" * 1000, "{" * 5000 + "}" * 10,
    "export default defineConfig({ schema: 'a', schema: 'b' })", "/* never closed", "`" * 3,
    "export default defineConfig({ migrations: { path: 'm', path: path.join('a',) } })",
])
def test_hostile_config_text_never_raises_anything_but_a_clear_refusal(tmp_path, text):
    root = project(tmp_path, text)
    try:
        layout = discover(str(root))
    except PrismaOpsError as exc:
        assert exc.details["code"] == "project_layout_unknown"
    else:
        assert layout.schema_path.startswith(str(root)) or os.path.isabs(layout.schema_path)


def test_a_huge_config_is_read_only_up_to_its_limit(tmp_path):
    root = project(tmp_path, "export default defineConfig({ schema: 'db/schema.prisma' })\n" + "//" + "x" * (4 << 20))
    assert discover(str(root)).schema_path == str(root / "db" / "schema.prisma")


def test_tokens_keep_strings_whole_and_drop_comments():
    found = [tok[:2] for tok in tokens("a: 'x // not a comment', // comment\n b: \"/* no */\" /* c */ `t`")]
    assert ("string", "'x // not a comment'") in found and ("string", '"/* no */"') in found
    assert ("string", "`t`") in found and not any("comment" in text and kind != "string" for kind, text in found)


def test_read_config_says_nothing_where_the_file_says_nothing(tmp_path):
    path = tmp_path / "prisma.config.ts"
    path.write_text("export default defineConfig({ datasource: { url: env('DATABASE_URL') } })\n")
    assert read_config(str(path)) == {"schema": None, "migrations_path": None}
