"""Run several install steps' wheel installer in one container and one
interpreter start.

Usage: VENV/bin/python -I -B batchinstall.py --jobs N INSTALLER --root PREFIX ARGS... [--root PREFIX ARGS...]

The embedded engine runs per-layer install steps that arrive together as
one container (coalesce.go): the first step's root filesystem is the
container's, every other step's is mounted at its own PREFIX with that
step's mounts below it ("" is the container's root). Starting a container
and a Python interpreter is most of what a small install costs, so this
loads INSTALLER (the steps' wheelinstall.py) once and, for each group,
forks a child that chroots into PREFIX and calls the installer's main with
the group's ARGS: the child sees exactly what the step alone would see
(its venv, its wheel files, at the same paths), so it writes the same
bytes. N children run at a time (the engine gives the container N steps'
CPU quota); their roots are separate, so one failing does not touch
another.

A group whose installer or venv is not this interpreter's (the bytes of
INSTALLER or of pyvenv.cfg differ below its PREFIX) is left untouched and
reported as exit 125: the engine then runs that step alone.

For every group, one line on stdout: "skillbuild-batch-status " and a JSON
object {"i": group index, "exit": exit status (128+N when killed by signal
N), "output": what the child wrote to stdout and stderr}.
"""
import codecs
import importlib.util
import json
import os
import sys
import sysconfig
import traceback

STATUS = "skillbuild-batch-status "
NOT_BATCHABLE = 125


def load(path):
    spec = importlib.util.spec_from_file_location("wheelinstall", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def read(path):
    with open(path, "rb") as f:
        return f.read()


def child(mod, installer, source, cfg, prefix, args):
    if prefix:
        try:
            os.chroot(prefix)
            os.chdir("/")
        except OSError as e:
            sys.stderr.write("batchinstall: cannot enter %s: %s\n" % (prefix, e))
            return NOT_BATCHABLE
    if read(installer) != source or read(os.path.join(sys.prefix, "pyvenv.cfg")) != cfg:
        sys.stderr.write("batchinstall: another installer or virtual environment below %s\n" % prefix)
        return NOT_BATCHABLE
    sys.argv = [installer] + args
    return mod.main(args)


def start(mod, installer, source, cfg, prefix, args):
    """Forks the child of one group; returns (pid, fd of its output)."""
    out = os.memfd_create("batchinstall-output")
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.dup2(out, 1)
            os.dup2(out, 2)
            code = child(mod, installer, source, cfg, prefix, args)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    return pid, out


def main(argv):
    if len(argv) < 5 or argv[0] != "--jobs" or not argv[1].isdigit() or argv[3] != "--root":
        sys.stderr.write(__doc__)
        return 2
    slots, installer, groups = max(1, int(argv[1])), argv[2], []
    for a in argv[3:]:
        if a == "--root":
            groups.append([])
        else:
            groups[-1].append(a)
    if any(not g for g in groups):
        sys.stderr.write("batchinstall: --root without a prefix\n")
        return 2
    source = read(installer)
    cfg = read(os.path.join(sys.prefix, "pyvenv.cfg"))
    mod = load(installer)
    # What the installer loads lazily (the interpreter's build-time
    # configuration, the codecs zipfile decodes member names with) is
    # loaded here, once, before any chroot.
    sysconfig.get_paths()
    for name in ("cp437", "utf-8", "ascii", "latin-1"):
        codecs.lookup(name)
    todo = list(enumerate(groups))
    running = {}
    while todo or running:
        while todo and len(running) < slots:
            i, g = todo.pop(0)
            pid, fd = start(mod, installer, source, cfg, g[0], g[1:])
            running[pid] = (i, fd)
        pid, status = os.wait()
        if pid not in running:
            continue
        i, fd = running.pop(pid)
        code = os.waitstatus_to_exitcode(status)
        if code < 0:
            code = 128 - code
        os.lseek(fd, 0, os.SEEK_SET)
        with os.fdopen(fd, "rb") as f:
            output = f.read().decode("utf-8", "replace")
        sys.stdout.write(STATUS + json.dumps({"i": i, "exit": code, "output": output}) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
