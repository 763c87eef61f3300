"""Run pip on a view of the previously installed set: metadata, no code.

Usage: python3 -I installedview.py VIEW.json VENV -- PIP_ARGS...

Creates VENV as `python3 -m venv --without-pip` does, writes into its
site-packages exactly the dist-info directories VIEW.json lists (each a
METADATA and an INSTALLER file that skillbuild synthesized from a lock
document it recorded), and replaces itself with this interpreter's pip
(the base's) running under VENV's interpreter: what `pip --python VENV`
does (pip >= 22.3), without pip's own re-exec.

The view holds no file of any package: no module, no .pth, no script, so
the interpreter that runs pip executes nothing that came from a package.
pip sees those distributions as installed and, without
--ignore-installed, keeps every one that satisfies the requirements; its
report lists only what must be added (or replaced).

VIEW.json: {"dists": [{"dir": "NAME-VERSION.dist-info",
"files": {"METADATA": "...", "INSTALLER": "..."}}, ...]}
Stdlib only.
"""
import importlib.util
import json
import os
import re
import sys
import venv

DIST_INFO = re.compile(r"^[A-Za-z0-9_.+!]+-[A-Za-z0-9_.+!]+\.dist-info$")
FILES = ("METADATA", "INSTALLER")


def fail(msg):
    sys.stderr.write("installedview: %s\n" % msg)
    return 2


def main(argv):
    if len(argv) < 3 or argv[2] != "--" or not os.path.isabs(argv[1]):
        return fail("usage: installedview.py VIEW.json /ABSOLUTE/VENV -- PIP_ARGS...")
    view_file, top, args = argv[0], os.path.normpath(argv[1]), argv[3:]
    with open(view_file, encoding="utf-8") as f:
        view = json.load(f)
    venv.EnvBuilder(with_pip=False, symlinks=True).create(top)
    site = os.path.join(top, "lib", "python%d.%d" % sys.version_info[:2], "site-packages")
    if not os.path.isdir(site):
        return fail("the venv has no %s" % site)
    for d in view["dists"]:
        name = d["dir"]
        if not DIST_INFO.match(name) or set(d["files"]) - set(FILES):
            return fail("refusing dist-info entry %r" % name)
        os.mkdir(os.path.join(site, name))
        for fname, text in d["files"].items():
            with open(os.path.join(site, name, fname), "w", encoding="utf-8") as f:
                f.write(text)
    spec = importlib.util.find_spec("pip")
    if spec is None or not spec.submodule_search_locations:
        return fail("no pip in the base image")
    runner = os.path.join(list(spec.submodule_search_locations)[0], "__pip-runner__.py")
    if not os.path.isfile(runner):
        return fail("the base's pip has no %s (pip >= 22.3 is needed)" % runner)
    python = os.path.join(top, "bin", "python")
    sys.stdout.flush()
    sys.stderr.flush()
    # -I: no PYTHON* variables, no user site; -B: no bytecode written.
    os.execv(python, [python, "-I", "-B", runner] + args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
