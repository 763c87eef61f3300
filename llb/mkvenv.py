"""Create the skill's virtual environment with every time in it fixed.

Usage: python3 -I mkvenv.py DIR

Does what `python3 -m venv --without-pip DIR` does (symbolic links to the
interpreter, no pip: the base's pip drives installs with --python), then
sets the modification time of everything it made (DIR, all below it, the
parents it created and the existing parent it added one to) to
SOURCE_DATE_EPOCH (0 when unset), without following symbolic links.

Every step that makes a layer of the image fixes its own times this way,
so a layer's bytes depend only on what it holds and BuildKit's exporter
need not rewrite the timestamps of every layer (decompress, rewrite,
recompress and store each one again) on every export.
"""
import os
import sys
import venv


def main(argv):
    if len(argv) != 1 or not os.path.isabs(argv[0]):
        sys.stderr.write("usage: mkvenv.py /ABSOLUTE/DIR\n")
        return 2
    top = os.path.normpath(argv[0])
    # The directories this creates, and the first existing one, which
    # gains an entry: all of them are in the step's layer.
    made = [top]
    while not os.path.lexists(os.path.dirname(made[-1])):
        made.append(os.path.dirname(made[-1]))
    changed = os.path.dirname(made[-1])
    venv.EnvBuilder(with_pip=False, symlinks=True).create(top)
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    times = (epoch * 10**9, epoch * 10**9)
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            os.utime(os.path.join(root, name), ns=times, follow_symlinks=False)
    for d in made + [changed]:
        os.utime(d, ns=times, follow_symlinks=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
