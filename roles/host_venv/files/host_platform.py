"""Print the host's Python and platform as JSON: what binary wheels must match to install here.

Run by the host_venv role with the host's own Python before any virtualenv exists; standard library only.
"""

import importlib.util
import json
import os
import platform
import sys


def main():
    libc = os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else None
    glibc = None
    if libc and libc.startswith("glibc "):
        major, minor = libc.split(" ", 1)[1].split(".")[:2]
        glibc = [int(major), int(minor)]
    machine = platform.machine()
    tag = "%s%d%d" % ("cp" if platform.python_implementation() == "CPython" else "pp", sys.version_info[0],
                      sys.version_info[1])
    platforms = []
    if glibc and glibc[0] == 2:
        # Every manylinux tag this glibc can load, newest first, plus the legacy alias of 2.17.
        platforms = ["manylinux_2_%d_%s" % (m, machine) for m in range(glibc[1], 16, -1)]
        platforms.append("manylinux2014_%s" % machine)
    print(json.dumps({
        "python_version": "%d.%d" % sys.version_info[:2],
        "abi": tag,
        "machine": machine,
        "glibc": glibc,
        "platforms": platforms,
        "key": "%s-%s-glibc%s" % (tag, machine, ".".join(map(str, glibc)) if glibc else "none"),
        "venv_available": importlib.util.find_spec("venv") is not None,
    }))


if __name__ == "__main__":
    main()
