"""Check a merged venv: every file each distribution's RECORD lists is the
file that distribution wrote.

Each distribution is installed into its own layer and the layers are
merged; if two distributions write the same path, the later layer silently
shadows the earlier one. This script finds such paths by reading every
*.dist-info/RECORD under the venv: a path claimed by two distributions, or
a file whose sha256 no longer matches its RECORD, is reported and the step
fails. Only the standard library is used; nothing is written.
"""
import base64
import csv
import hashlib
import os
import sys


def main(venv):
    owners = {}
    problems = []
    for root, dirs, _files in os.walk(venv):
        for d in dirs:
            if not d.endswith(".dist-info"):
                continue
            record = os.path.join(root, d, "RECORD")
            if not os.path.isfile(record):
                continue
            dist = d[: -len(".dist-info")]
            base = root
            with open(record, newline="", encoding="utf-8") as f:
                for row in csv.reader(f):
                    if not row or not row[0]:
                        continue
                    path = os.path.normpath(os.path.join(base, row[0]))
                    if path in owners and owners[path] != dist:
                        problems.append("%s is written by both %s and %s" % (path, owners[path], dist))
                        continue
                    owners[path] = dist
                    if len(row) > 1 and row[1].startswith("sha256="):
                        try:
                            with open(path, "rb") as g:
                                got = base64.urlsafe_b64encode(hashlib.sha256(g.read()).digest()).rstrip(b"=").decode()
                        except OSError as e:
                            problems.append("%s of %s is missing: %s" % (path, dist, e))
                            continue
                        if got != row[1][len("sha256="):]:
                            problems.append("%s of %s was overwritten by another distribution" % (path, dist))
        # dist-info directories are never nested: no need to descend into them.
        dirs[:] = [d for d in dirs if not d.endswith(".dist-info")]
    for p in problems:
        sys.stderr.write("conflict: %s\n" % p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
