"""Unit tests of module_utils/dotenv.py and connection.read_env_file.

The expected values follow what the Prisma 6.19.3 CLI really loads (dotenv 16 parsing plus the copy
of dotenv-expand bundled in @prisma/internals), checked with `prisma debug`: only `${VAR}` is expanded,
`$VAR` stays literal, single-quoted values are expanded too. The last two tests compare with the
real CLI when the oracle is installed (`make setup`).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ansible_collections.prisma_ops.migrate.plugins.module_utils.connection import read_env_file
from ansible_collections.prisma_ops.migrate.plugins.module_utils.dotenv import parse_dotenv, read_env_value
from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError

pytestmark = pytest.mark.unit

URL = "postgresql://app:p%40ss@db.internal:5432/appdb?schema=tenant&connection_limit=5&sslmode=require"


def parse(text: str, environ: dict | None = None) -> dict:
    return parse_dotenv(text, environ={} if environ is None else environ)


# --------------------------------------------------------------------------------------------
# Syntax
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("KEY=value\n", {"KEY": "value"}),
    ("KEY=value", {"KEY": "value"}),
    ("export KEY=value\n", {"KEY": "value"}),
    ("export   KEY=value\n", {"KEY": "value"}),
    ("KEY = value\n", {"KEY": "value"}),
    ("KEY\t=\tvalue\t\n", {"KEY": "value"}),
    ("   KEY=value\n", {"KEY": "value"}),
    ("KEY=  spaced value  \n", {"KEY": "spaced value"}),
    ("KEY: yaml-ish\n", {"KEY": "yaml-ish"}),
    ("KEY=\n", {"KEY": ""}),
    ("KEY=''\n", {"KEY": ""}),
    ('KEY=""\n', {"KEY": ""}),
    ("KEY='single'\n", {"KEY": "single"}),
    ('KEY="double"\n', {"KEY": "double"}),
    ("KEY=`back`\n", {"KEY": "back"}),
    ('KEY="  kept  "\n', {"KEY": "  kept  "}),
    ("KEY='it\"s'\n", {"KEY": 'it"s'}),
    ('KEY="it\'s"\n', {"KEY": "it's"}),
    ("KEY=`it's \"x\"`\n", {"KEY": "it's \"x\""}),
    ("KEY='a' trailing\n", {"KEY": "'a' trailing"}),
    ("my.dotted-key_1=v\n", {"my.dotted-key_1": "v"}),
    ("not a line\nKEY=v\n", {"KEY": "v"}),
    ("=novalue\nKEY=v\n", {"KEY": "v"}),
])
def test_syntax(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("# a comment\nKEY=value\n", {"KEY": "value"}),
    ("  # indented comment KEY=no\nKEY=value\n", {"KEY": "value"}),
    ("KEY=value # trailing comment\n", {"KEY": "value"}),
    # An unquoted value ends at the first '#', even without a space (npm dotenv behaviour).
    ("KEY=abc#def\n", {"KEY": "abc"}),
    ("PASSWORD=pa#ss\n", {"PASSWORD": "pa"}),
    ("KEY='abc#def'\n", {"KEY": "abc#def"}),
    ('KEY="abc # def" # comment\n', {"KEY": "abc # def"}),
    ("KEY=`a#b`#c\n", {"KEY": "a#b"}),
    ("KEY=#only comment\n", {"KEY": ""}),
])
def test_comments(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize("text, expected", [
    ('KEY="line1\\nline2"\n', "line1\nline2"),
    ('KEY="a\\rb"\n', "a\rb"),
    ("KEY='line1\\nline2'\n", "line1\\nline2"),
    ("KEY=`line1\\nline2`\n", "line1\\nline2"),
    ("KEY=line1\\nline2\n", "line1\\nline2"),
    ('KEY="multi\nline\nvalue"\nNEXT=1\n', "multi\nline\nvalue"),
    ("KEY='multi\nline'\nNEXT=1\n", "multi\nline"),
    ("KEY=`multi\nline`\nNEXT=1\n", "multi\nline"),
    ("KEY=\"-----BEGIN KEY-----\nabc\n-----END KEY-----\"\n", "-----BEGIN KEY-----\nabc\n-----END KEY-----"),
])
def test_newlines_and_multiline(text, expected):
    values = parse(text)
    assert values["KEY"] == expected
    if "NEXT" in text:
        assert values["NEXT"] == "1"


def test_crlf_file():
    text = 'A=1\r\nB="two words"\r\nC="x\r\ny"\r\nURL=%s\r\n' % URL
    assert parse(text) == {"A": "1", "B": "two words", "C": "x\ny", "URL": URL}


def test_lone_cr_line_endings():
    assert parse("A=1\rB=2\r") == {"A": "1", "B": "2"}


def test_bom_is_ignored():
    assert parse("\ufeffDATABASE_URL=%s\nX=1\n" % URL) == {"DATABASE_URL": URL, "X": "1"}


def test_later_definitions_win():
    assert parse("KEY=first\nOTHER=x\nKEY=second\n") == {"KEY": "second", "OTHER": "x"}


@pytest.mark.parametrize("line", [
    "DATABASE_URL=%s" % URL,
    'DATABASE_URL="%s"' % URL,
    "DATABASE_URL='%s'" % URL,
    "export DATABASE_URL = %s   # prod" % URL,
])
def test_value_with_equals_signs_and_query_string(line):
    assert parse(line + "\n")["DATABASE_URL"] == URL


def test_realistic_env_file():
    text = (
        "# Environment for the Backend\n"
        "NODE_ENV=production\n"
        "PORT=3000\n"
        "\n"
        "DATABASE_URL=\"postgresql://schooliat:Zx%23s9%40!@127.0.0.1:5432/schooliat?schema=public&connection_limit=10\"\n"
        "JWT_SECRET='abc$def${NOPE}'\n"
        "SHADOW_DATABASE_URL=\n"
    )
    values = parse(text)
    assert values["DATABASE_URL"] == ("postgresql://schooliat:Zx%23s9%40!@127.0.0.1:5432/schooliat"
                                      "?schema=public&connection_limit=10")
    assert values["PORT"] == "3000"
    assert values["SHADOW_DATABASE_URL"] == ""
    assert values["JWT_SECRET"] == "abc$def"  # ${NOPE} is undefined: empty, as in Prisma


# --------------------------------------------------------------------------------------------
# Expansion (Prisma's dotenv-expand: ${VAR} only)
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, key, expected", [
    ("HOST=db\nURL=postgresql://u@${HOST}:5432/app\n", "URL", "postgresql://u@db:5432/app"),
    ('HOST=db\nURL="postgresql://u@${HOST}/app"\n', "URL", "postgresql://u@db/app"),
    ("A=1\nB=${A}${A}-${A}\n", "B", "11-1"),
    # Defined later in the file: still found (the CLI has every value in process.env first).
    ("URL=postgresql://u@${HOST}/app\nHOST=late\n", "URL", "postgresql://u@late/app"),
    # Chains are expanded recursively.
    ("A=${B}\nB=${C}x\nC=1\n", "A", "1x"),
    # $VAR without braces is NOT expanded by the Prisma CLI: a password like pa$word stays intact.
    ("A=1\nB=$A\n", "B", "$A"),
    ("PASS=pa$word\n", "PASS", "pa$word"),
    ("URL=postgresql://u:pa$word@db/app\n", "URL", "postgresql://u:pa$word@db/app"),
    ("A=1\nB=\"pre$A\"\n", "B", "pre$A"),
    # Single-quoted values are expanded too: the quotes are gone before Prisma's expand runs.
    ("A=1\nB='${A}'\n", "B", "1"),
    # \${VAR} is a literal ${VAR}; a backslash before $VAR stays.
    ("A=1\nB=\\${A}\n", "B", "${A}"),
    ("A=1\nB=\\$A\n", "B", "\\$A"),
    ("A=1\nB=\\${A}-${A}\n", "B", "1-${A}"),  # Prisma's replace-first quirk, kept on purpose
    # Unknown variables and empty braces become empty; default syntax is not supported.
    ("B=x${MISSING}y\n", "B", "xy"),
    ("B=x${}y\n", "B", "xy"),
    ("B=${MISSING:-fallback}\n", "B", "${MISSING:-fallback}"),
    ("B=${not valid}\n", "B", "${not valid}"),
    # The substituted value goes through JavaScript's String.replace replacement patterns.
    ("P=pa$$word\nURL=u:${P}@h\n", "URL", "u:pa$word@h"),
    ("P=a$&b\nX=<${P}>\n", "X", "<a${P}b>"),
    ("P=$`|$'\nX=<${P}>\n", "X", "<<|>>"),
    ("P=pa$$word\n", "P", "pa$$word"),
])
def test_expansion(text, key, expected):
    assert parse(text)[key] == expected


def test_expansion_builds_database_url_from_parts():
    text = ("DB_USER=app\nDB_PASS=p%40ss\nDB_HOST=db.internal\nDB_NAME=appdb\n"
            "DATABASE_URL=\"postgresql://${DB_USER}:${DB_PASS}@${DB_HOST}:5432/${DB_NAME}?schema=tenant\"\n")
    assert parse(text)["DATABASE_URL"] == "postgresql://app:p%40ss@db.internal:5432/appdb?schema=tenant"


def test_expansion_prefers_file_then_environment():
    text = "URL=postgresql://${DB_USER}@${DB_HOST}/app\nDB_HOST=from-file\n"
    values = parse(text, environ={"DB_HOST": "from-env", "DB_USER": "env-user"})
    assert values["URL"] == "postgresql://env-user@from-file/app"
    assert values["DB_HOST"] == "from-file"


def test_default_environ_is_os_environ(monkeypatch):
    monkeypatch.setenv("PRISMA_OPS_TEST_ONLY_VAR", "from-os")
    assert parse_dotenv("X=${PRISMA_OPS_TEST_ONLY_VAR}\n")["X"] == "from-os"
    monkeypatch.delenv("PRISMA_OPS_TEST_ONLY_VAR")
    assert parse_dotenv("X=${PRISMA_OPS_TEST_ONLY_VAR}\n")["X"] == ""


@pytest.mark.parametrize("text", [
    "A=${A}\n",
    "A=${B}\nB=${A}\n",
    "A=x${B}\nB=y${C}\nC=z${A}\n",
])
def test_reference_loops_terminate(text):
    values = parse(text)
    assert set(values) == set(re.findall(r"^([A-Z])=", text, re.M))
    assert all("${" not in v for v in values.values())


def test_self_reference_falls_back_to_environment():
    assert parse("PATH=${PATH}:/opt/app/bin\n", environ={"PATH": "/usr/bin"})["PATH"] == "/usr/bin:/opt/app/bin"


# --------------------------------------------------------------------------------------------
# Nothing is ever executed
# --------------------------------------------------------------------------------------------

def test_shell_syntax_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    text = (
        "A=$(touch {m})\n"
        "B=`touch {m}`\n"
        "C=\"$(touch {m})\"\n"
        "D='`touch {m}`'\n"
        "E=${{A}}\n"
        "F=$(rm -rf /)\n"
        "G=; touch {m}\n"
        "H=x && touch {m}\n"
    ).format(m=marker)
    env_file = tmp_path / ".env"
    env_file.write_text(text)
    values = parse(text)
    assert values["A"] == "$(touch %s)" % marker
    assert values["B"] == "touch %s" % marker
    assert values["C"] == "$(touch %s)" % marker
    assert values["D"] == "`touch %s`" % marker
    assert values["E"] == values["A"]
    assert values["F"] == "$(rm -rf /)"
    assert values["G"] == "; touch %s" % marker
    for name in "ABCDEFGH":
        read_env_file(str(env_file), name)
    assert not marker.exists()


# --------------------------------------------------------------------------------------------
# read_env_file errors (through connection.read_env_file)
# --------------------------------------------------------------------------------------------

def test_read_env_file_value(tmp_path):
    env = tmp_path / ".env"
    env.write_bytes(b"\xef\xbb\xbfNODE_ENV=production\r\nDATABASE_URL='" + URL.encode() + b"'\r\n")
    assert read_env_file(str(env), "DATABASE_URL") == URL


def test_read_env_file_missing_file(tmp_path):
    path = tmp_path / "nope" / ".env"
    with pytest.raises(PrismaOpsError) as info:
        read_env_file(str(path), "DATABASE_URL")
    assert str(path) in info.value.msg
    assert "does not exist" in info.value.msg


def test_read_env_file_directory(tmp_path):
    with pytest.raises(PrismaOpsError) as info:
        read_env_file(str(tmp_path), "DATABASE_URL")
    assert "is a directory" in info.value.msg


def test_read_env_file_missing_variable_lists_names_not_values(tmp_path):
    env = tmp_path / ".env"
    env.write_text("DB_URL=postgresql://app:Sup3rSecretValue@db/app\nJWT_SECRET=An0therSecret\n")
    with pytest.raises(PrismaOpsError) as info:
        read_env_file(str(env), "DATABASE_URL")
    message = info.value.msg
    assert "DATABASE_URL" in message
    assert "DB_URL" in message and "JWT_SECRET" in message
    assert "Sup3rSecretValue" not in message
    assert "An0therSecret" not in message
    assert "postgresql://" not in message


def test_read_env_file_without_any_variable(tmp_path):
    env = tmp_path / ".env"
    env.write_text("# only comments\n")
    with pytest.raises(PrismaOpsError, match="no variables"):
        read_env_file(str(env), "DATABASE_URL")


def test_read_env_file_empty_variable(tmp_path):
    env = tmp_path / ".env"
    env.write_text('DATABASE_URL=""\n')
    with pytest.raises(PrismaOpsError, match="is empty"):
        read_env_file(str(env), "DATABASE_URL")


def test_read_env_file_unreadable():
    from tests.harness.unprivileged import run_python_as_nobody, shared_tmpdir
    env = Path(shared_tmpdir()) / ".env"
    env.write_text("DATABASE_URL=x\n")
    env.chmod(0)
    proc = run_python_as_nobody(
        "from ansible_collections.prisma_ops.migrate.plugins.module_utils.connection import read_env_file\n"
        "from ansible_collections.prisma_ops.migrate.plugins.module_utils.errors import PrismaOpsError\n"
        "try:\n    read_env_file(%r, 'DATABASE_URL')\nexcept PrismaOpsError as exc:\n    print(exc.msg)\n" % str(env))
    assert proc.returncode == 0, proc.stderr
    assert "is not readable by this user" in proc.stdout


def test_read_env_file_invalid_utf8_is_replaced_not_fatal(tmp_path):
    env = tmp_path / ".env"
    env.write_bytes(b"NOTE=caf\xe9\nDATABASE_URL=postgresql://u@db/app\n")
    assert read_env_file(str(env), "DATABASE_URL") == "postgresql://u@db/app"


# --------------------------------------------------------------------------------------------
# Against the real Prisma CLI (skipped when the oracle is not installed)
# --------------------------------------------------------------------------------------------

def _oracle_home() -> Path:
    from tests.harness.prisma import oracle_home
    return oracle_home()


def _bundle_functions() -> tuple[str, str] | None:
    """dotenv's parse and Prisma's expand, cut out of the CLI bundle (prisma 6.19.3)."""
    bundle = _oracle_home() / "node_modules" / "prisma" / "build" / "index.js"
    if not bundle.exists():
        return None
    text = bundle.read_text(encoding="utf-8")
    start = text.find(r"=/(?:^|^)\s*(?:export\s+)?([\w.-]+)")
    if start < 0:
        return None
    name_start = start
    while text[name_start - 1].isalnum() or text[name_start - 1] in "_$":
        name_start -= 1
    parse_func = text.find("function ", start)
    parse_end = text.find("function ", parse_func + 9)
    parse_src = "var " + text[name_start:parse_end]
    parse_name = re.match(r"function ([\w$]+)\(", text[parse_func:]).group(1)
    marker = text.find("ignoreProcessEnv?{}:process.env")
    if marker < 0:
        return None
    expand_start = text.rfind("function ", 0, marker)
    expand_end = text.find("var ", marker)
    expand_src = text[expand_start:expand_end]
    expand_name = re.match(r"function ([\w$]+)\(", expand_src).group(1)
    return parse_src + "\nvar __parse = %s;" % parse_name, expand_src + "\nreturn %s;" % expand_name


ORACLE_JS = r"""
const fs = require('fs');
const [parseSrc, expandSrc] = JSON.parse(process.argv[1]);
eval(parseSrc);
const inputs = JSON.parse(fs.readFileSync(0, 'utf8'));
console.log(JSON.stringify(inputs.map((text) => {
  const parsed = __parse(text);
  // dotenv.config() puts the file's values into a clean process.env, then Prisma expands them.
  const expand = new Function('process', expandSrc)({ env: Object.assign({}, parsed) });
  try { expand({ parsed }); return parsed; } catch (e) { return { __error: String(e) }; }
})));
"""


@pytest.mark.prisma
def test_parse_dotenv_matches_prisma_cli_bundle_on_generated_files():
    node = shutil.which("node")
    functions = _bundle_functions()
    if not node or functions is None:
        pytest.fail("node or the Prisma CLI oracle bundle is not installed: run `make setup`")
    rng = random.Random(20250101)
    atoms = ["A", "B", "C", "=", " = ", "${A}", "${B}", "$A", "\\${A}", "'", '"', "`", "#", " ", "\n", "\r\n", "x",
             "$$", "$&", "\\n", "export ", ": ", "${}", "${C", "}", "p%40ss", "?schema=t&x=1"]
    cases = ["".join(rng.choice(atoms) for _unused in range(rng.randint(1, 16))) for _unused in range(1500)]
    cases += ["A=1\nB=$A\nC='${A}'\nD=\\${A}\nE=${A:-d}\nF=pa$$w\nG=<${F}>\n", "\ufeffA=1\n", 'A="x\\ny"\n']
    result = subprocess.run([node, "-e", ORACLE_JS, json.dumps(list(functions))], input=json.dumps(cases),
                            capture_output=True, text=True, check=True, timeout=120)
    expected = json.loads(result.stdout)
    compared = 0
    for text, want in zip(cases, expected):
        if "__error" in want:  # reference loops: the CLI overflows its stack
            continue
        compared += 1
        assert parse(text) == want, text
    assert compared > 1000


@pytest.mark.prisma
def test_parse_dotenv_matches_prisma_debug(tmp_path):
    """End to end: the values `prisma debug` prints after loading .env equal parse_dotenv's."""
    from tests.harness.prisma import oracle_home
    prisma = oracle_home() / "node_modules" / ".bin" / "prisma"
    if not prisma.exists():
        pytest.fail("the Prisma CLI oracle is not installed: run `make setup`")
    (tmp_path / "prisma").mkdir()
    (tmp_path / "prisma" / "schema.prisma").write_text(
        'datasource db {\n  provider = "postgresql"\n  url      = env("DATABASE_URL")\n}\n')
    text = ("A=1\nP=pa$$w\nNODE_ENV=x$A-${A}\nRUST_LOG='${A}'\nTERM=<${P}>\nNO_PROXY=\\${A}#c\n"
            "http_proxy=\"q\\${A}\"\nHTTP_PROXY=${MISSING:-d}\n")
    (tmp_path / ".env").write_text(text)
    shown = ("NODE_ENV", "RUST_LOG", "TERM", "NO_PROXY", "http_proxy", "HTTP_PROXY")
    env = {k: v for k, v in os.environ.items() if k not in shown and k.upper() not in ("HTTPS_PROXY", "CI")}
    env.update({"CHECKPOINT_DISABLE": "1", "PRISMA_HIDE_UPDATE_MESSAGE": "1", "NO_COLOR": "1"})
    result = subprocess.run([str(prisma), "debug"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    printed = dict(re.findall(r"^- (\w+): `(.*)`$", result.stdout, re.M))
    ours = parse(text)
    for name in shown:
        assert printed.get(name) == ours[name], (name, printed.get(name), ours[name])


# --------------------------------------------------------------------------------------------
# An unquoted '#' (issue 13): parsed exactly as dotenv does, a cut URL refused without a trace of it
# --------------------------------------------------------------------------------------------

HASH_CASES = [
    "DATABASE_URL=postgresql://app:Zq7#Xw9@db/app\n",
    "X=abc # note\n",
    "X=abc#note\n",
    "X=abc\t#note\n",
    "X='pa#ss' # c\n",
    'X="pa#ss"#c\n',
    "X=`a#b`#c\n",
    "X=#all comment\n",
    "X=a #b\nX=c#d@e\n",
]


@pytest.mark.parametrize("text, expected", [
    ("DATABASE_URL=postgresql://app:Zq7#Xw9@db/app\n", {"DATABASE_URL": "postgresql://app:Zq7"}),
    ("X=abc # note\n", {"X": "abc"}),
    ("X=abc#note\n", {"X": "abc"}),
    ("X='pa#ss' # c\n", {"X": "pa#ss"}),
])
def test_an_unquoted_hash_cuts_the_value_with_or_without_a_space(text, expected):
    # dotenv 16.6.1's LINE regex ([^#\r\n]+ for an unquoted value), not its README ("after whitespace").
    assert parse(text) == expected


@pytest.mark.prisma
def test_hash_cases_match_the_dotenv_in_the_prisma_cli():
    node = shutil.which("node")
    functions = _bundle_functions()
    if not node or functions is None:
        pytest.fail("node or the Prisma CLI oracle bundle is not installed: run `make setup`")
    result = subprocess.run([node, "-e", ORACLE_JS, json.dumps(list(functions))], input=json.dumps(HASH_CASES),
                            capture_output=True, text=True, check=True, timeout=120)
    expected = json.loads(result.stdout)
    assert expected[0] == {"DATABASE_URL": "postgresql://app:Zq7"}  # the real dotenv cuts inside the password
    assert expected[1] == {"X": "abc"} and expected[2] == {"X": "abc"}
    for text, want in zip(HASH_CASES, expected):
        assert parse(text) == want, text


def test_a_url_cut_inside_its_password_is_refused_and_shows_no_piece_of_it(tmp_path):
    env = tmp_path / ".env"
    env.write_text("NODE_ENV=production\nDATABASE_URL=postgresql://app:Zq7#Xw9@db/app\n")
    with pytest.raises(PrismaOpsError) as info:
        read_env_value(str(env), "DATABASE_URL")
    message = info.value.msg
    assert "unquoted '#'" in message and "%23" in message and "DATABASE_URL" in message
    assert "Zq7" not in message and "Xw9" not in message and "postgresql://" not in message


@pytest.mark.parametrize("line, value", [
    ("DATABASE_URL='postgresql://app:Zq7#Xw9@db/app'\n", "postgresql://app:Zq7#Xw9@db/app"),
    ("DATABASE_URL=postgresql://app:Zq7%23Xw9@db/app # the app's\n", "postgresql://app:Zq7%23Xw9@db/app"),
    ("DATABASE_URL=postgresql://app:pw@db/app#prod\n", "postgresql://app:pw@db/app"),  # a glued comment, no @ after
])
def test_quoted_encoded_or_whole_urls_are_read_as_dotenv_reads_them(tmp_path, line, value):
    env = tmp_path / ".env"
    env.write_text(line)
    assert read_env_value(str(env), "DATABASE_URL") == value


def test_only_the_last_definition_decides_whether_a_value_was_cut(tmp_path):
    env = tmp_path / ".env"
    env.write_text("DATABASE_URL=postgresql://app:Zq7#Xw9@db/app\nDATABASE_URL='postgresql://app:ok@db/app'\n")
    assert read_env_value(str(env), "DATABASE_URL") == "postgresql://app:ok@db/app"


def test_read_env_value_gives_the_same_answers_as_read_env_file(tmp_path):
    env = tmp_path / ".env"
    env.write_bytes(b"\xef\xbb\xbfNODE_ENV=production\r\nDATABASE_URL='" + URL.encode() + b"'\r\n")
    assert read_env_value(str(env), "DATABASE_URL") == read_env_file(str(env), "DATABASE_URL") == URL
    with pytest.raises(PrismaOpsError, match="does not define MISSING"):
        read_env_value(str(env), "MISSING")
    with pytest.raises(PrismaOpsError, match="is a directory"):
        read_env_value(str(tmp_path), "DATABASE_URL")
    with pytest.raises(PrismaOpsError, match="does not exist"):
        read_env_value(str(tmp_path / "nope"), "DATABASE_URL")
