"""Stage and build the modules' virtualenv on the host; run by the host_venv role with the host's own Python.

Standard library only, Python 3.8+. Prints one JSON object ({"failed", "changed", "msg", ...}) and exits 0, so the
role turns a refusal into one message that says what to do.

    build_venv.py stage LIVE CHECK
        Refuses when LIVE holds anything this role did not build (or, in check mode, anything at all), else makes
        a private directory for the wheels beside it and prints its path.
    build_venv.py build LIVE WHEELS TAGGED MARKER IMPORTS CHECK PACKAGE...
        Under a lock on the host (two runs at once build one after the other; the second finds the first's work),
        builds the virtualenv beside LIVE from WHEELS only, checks that it imports IMPORTS, and swaps it in.
        The wheels directory is removed whatever happens.

Only a virtualenv holding the marker file this script writes is ever replaced; an empty directory counts as free.
In check mode (CHECK == "true") a virtualenv is built only where nothing exists yet: nothing is replaced or removed.
"""

import errno
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

MARKER = ".prisma_ops-packages"
LOCK_WAIT_LIMIT = 1800  # a safety net far above a build's few seconds; the lock is released when its holder exits


def report(**result):
    result.setdefault("failed", False)
    result.setdefault("changed", False)
    result.setdefault("msg", "")
    print(json.dumps(result))
    sys.exit(0)


def ownership(live):
    """'free', 'ours' or a sentence saying what is at LIVE instead."""
    if not os.path.lexists(live):
        return "free"
    if os.path.islink(live):
        return "a symbolic link"
    if not os.path.isdir(live):
        return "a file that is not a directory"
    entries = os.listdir(live)
    if not entries:
        return "free"
    marker = os.path.join(live, MARKER)
    if os.path.isfile(marker) and not os.path.islink(marker) and os.path.isfile(os.path.join(live, "pyvenv.cfg")):
        return "ours"
    return "a directory with %d entries and no %s marker" % (len(entries), MARKER)


def refuse(live, check_mode):
    """Stops unless LIVE may be built: free, or (not in check mode) a virtualenv of ours."""
    state = ownership(live)
    if state not in ("free", "ours"):
        report(failed=True, msg=(
            "host_venv_path %s holds %s: not a virtualenv this role built, so nothing there was touched. "
            "Move it away, or set host_venv_path to a path of its own (for example /opt/prisma_ops/venv)"
            % (live, state)))
    if state == "ours" and check_mode:
        report(failed=True, msg=(
            "the virtualenv at %s lacks a package or was built with other packages; check mode does not replace "
            "it. Run once without --check to rebuild it (only the virtualenv changes), or set host_venv_manage=false"
            % live))


def stage(live, check_mode):
    refuse(live, check_mode)
    parent = os.path.dirname(live)
    os.makedirs(parent, mode=0o755, exist_ok=True)
    wheels = tempfile.mkdtemp(prefix=os.path.basename(live) + ".wheels.", dir=parent)
    os.chmod(wheels, 0o755)
    report(changed=True, wheels=wheels)


def imports_ok(python, imports):
    if not os.path.exists(python):
        return False
    return subprocess.run([python, "-c", "import " + imports], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False).returncode == 0


def run(argv, what):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          check=False)
    if proc.returncode != 0:
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        raise RuntimeError("%s failed (exit %d): %s" % (what, proc.returncode, lines[-1] if lines else "no output"))


def take_lock(live):
    path = os.path.join(os.path.dirname(live), "." + os.path.basename(live) + ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600)
    signal.alarm(LOCK_WAIT_LIMIT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocks until the other run's build ends (or it dies)
    finally:
        signal.alarm(0)
    return fd


def clear_leftovers(live):
    """Half-built or half-swapped virtualenvs of a run that was killed (only names this script makes)."""
    parent, base = os.path.dirname(live), os.path.basename(live)
    pattern = re.compile(r"^\.?%s\.(new|old)\.[A-Za-z0-9_]{8}$" % re.escape(base))
    for name in os.listdir(parent):
        if pattern.match(name):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def swap(new, live):
    """Two renames: the live path is missing only between them; a run using the old one keeps its files."""
    parent, base = os.path.dirname(live), os.path.basename(live)
    if os.path.lexists(live):
        old = tempfile.mkdtemp(prefix="." + base + ".old.", dir=parent)
        os.rmdir(old)  # a unique name to rename onto
        os.rename(live, old)
        os.rename(new, live)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(new, live)


def build(live, wheels, tagged, marker, imports, check_mode, packages):
    try:
        fd = take_lock(live)
    except OSError as exc:
        report(failed=True, msg="could not lock %s for the build: %s" % (os.path.dirname(live), exc))
    try:
        tagged_live = os.path.join(live, "bin", tagged)
        if imports_ok(tagged_live, imports):
            report(msg="another run built the virtualenv at %s meanwhile" % live)
        refuse(live, check_mode)
        clear_leftovers(live)
        new = tempfile.mkdtemp(prefix=os.path.basename(live) + ".new.", dir=os.path.dirname(live))
        try:
            run([sys.executable, "-m", "venv", "--clear", "--without-pip", new], "python -m venv")
            pip = [name for name in os.listdir(wheels) if name.startswith("pip-") and name.endswith(".whl")]
            if not pip:
                raise RuntimeError("no pip wheel among the copied wheels in %s" % wheels)
            run([os.path.join(new, "bin", "python"), os.path.join(wheels, pip[0], "pip"), "install",
                 "--disable-pip-version-check", "--quiet", "--no-index", "--find-links", wheels] + packages,
                "pip install from the copied wheels")
            run([os.path.join(new, "bin", "python"), "-c", "import " + imports], "importing " + imports)
            with open(os.path.join(new, MARKER), "w") as handle:
                handle.write(marker)
            # Relative, so it still points into the virtualenv after the swap; Python finds pyvenv.cfg beside bin/.
            os.symlink("python", os.path.join(new, "bin", tagged))
            os.chmod(new, 0o755)
            swap(new, live)
        except (OSError, RuntimeError) as exc:
            shutil.rmtree(new, ignore_errors=True)
            report(failed=True, msg="building the virtualenv at %s failed, the live one is unchanged: %s"
                   % (live, exc))
        if not imports_ok(tagged_live, imports):
            report(failed=True, changed=True, msg="the virtualenv at %s does not import %s after the swap"
                   % (live, imports))
        report(changed=True, msg="built the virtualenv at %s" % live)
    finally:
        shutil.rmtree(wheels, ignore_errors=True)
        os.close(fd)


def main(argv):
    try:
        if argv[:1] == ["stage"] and len(argv) == 3:
            stage(os.path.abspath(argv[1]), argv[2].lower() == "true")
        elif argv[:1] == ["build"] and len(argv) >= 8:
            live, wheels, tagged, marker, imports, check = argv[1:7]
            build(os.path.abspath(live), wheels, tagged, marker, imports, check.lower() == "true", argv[7:])
    except OSError as exc:
        report(failed=True, msg="host_venv on this host: %s (%s)" % (exc, errno.errorcode.get(exc.errno, "?")))
    report(failed=True, msg="usage: build_venv.py stage LIVE CHECK | build LIVE WHEELS TAGGED MARKER IMPORTS CHECK PKG...")


if __name__ == "__main__":
    main(sys.argv[1:])
