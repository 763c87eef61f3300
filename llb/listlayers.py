"""List the real contents of install layers.

Usage: python3 listlayers.py LAYERS OUT N [VENV]

LAYERS/<i> (i < N) is the i-th distribution layer (llb.Diff of the venv
and the install step), mounted read-only. For each, OUT/<i>.jsonl gets one
JSON array per entry: [type, path], where type is "f" (regular file), "d"
(directory), "l" (symbolic link) or "o" (anything else) and path is where
the entry lands in the image ("/opt/skill/venv/..."). Links are never
followed. The list is what the layer really holds, whatever the installer
said it wrote; skillbuild checks it (nothing outside the venv, exactly the
locked distributions, no file in two layers, none over the venv's own).
With VENV (an absolute path in this step's own root, which is the venv's
state), OUT/venv.jsonl lists VENV and everything below it the same way:
the venv's files, which no distribution layer may replace. Standard
library only.
"""
import json
import os
import stat
import sys


def kind(mode):
    if stat.S_ISREG(mode):
        return "f"
    if stat.S_ISDIR(mode):
        return "d"
    if stat.S_ISLNK(mode):
        return "l"
    return "o"


def list_tree(top, f, prefix):
    """Writes the entries below top, each at prefix + its path in top."""
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            p = os.path.join(root, name)
            f.write(json.dumps([kind(os.lstat(p).st_mode), os.path.join(prefix, os.path.relpath(p, top))]) + "\n")


def main(layers, out, n, venv=None):
    for i in range(n):
        with open(os.path.join(out, "%d.jsonl" % i), "w", encoding="utf-8", errors="surrogateescape") as f:
            list_tree(os.path.join(layers, str(i)), f, "/")
    if venv:
        with open(os.path.join(out, "venv.jsonl"), "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(json.dumps([kind(os.lstat(venv).st_mode), venv]) + "\n")
            list_tree(venv, f, venv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:5]))
