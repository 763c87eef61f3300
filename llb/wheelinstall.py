"""Install wheels into the running virtual environment (PEP 427/491).

Usage: VENV/bin/python wheelinstall.py [--manifest OUT] SHA256 FILE [SHA256 FILE ...]

skillbuild installs each locked distribution into its own layer. Starting
pip for that costs about a second per distribution (pip starts twice);
unpacking a wheel is a file operation, so this script does it with the
standard library in one interpreter start per layer:

- the file's sha256 must equal the lock's (nothing unverified is unpacked);
- files go to purelib or platlib (Root-Is-Purelib), and <name>.data/<key>/
  to the matching sysconfig path (scripts, headers, data, purelib, platlib);
- '#!python' shebangs of .data/scripts are rewritten to this interpreter;
- console_scripts and gui_scripts from entry_points.txt get pip's wrapper;
- .py files are byte-compiled (compileall, as pip does; SOURCE_DATE_EPOCH
  makes the .pyc reproducible);
- INSTALLER is written and RECORD rewritten with every installed file.

With --manifest, every installed path is also listed in OUT, one
"<distribution>\t<path relative to the venv>" line each, so that skillbuild
can tell, without merging the layers, whether two distributions write the
same file. No network, no build code: wheels only. Errors go to stderr,
exit 1.
"""
import base64
import compileall
import csv
import hashlib
import io
import os
import posixpath
import re
import stat
import sys
import sysconfig
import zipfile

SCRIPT = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from {module} import {import_name}
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit({func}())
"""


def b64hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def fail(msg):
    sys.stderr.write("wheelinstall: %s\n" % msg)
    sys.exit(1)


def parse_kv(text):
    out = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip().lower()] = v.strip()
    return out


def entry_points(text):
    section, out = None, []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]").strip()
            continue
        if section in ("console_scripts", "gui_scripts") and "=" in line:
            name, ref = [x.strip() for x in line.split("=", 1)]
            ref = ref.split("[", 1)[0].strip()
            out.append((name, ref))
    return out


def install(path, want, manifest):
    with open(path, "rb") as f:
        data = f.read()
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        fail("%s: sha256 %s does not match the lock's %s" % (os.path.basename(path), got, want))
    paths = sysconfig.get_paths()
    python = os.path.join(paths["scripts"], "python")
    zf = zipfile.ZipFile(io.BytesIO(data))
    names = zf.namelist()
    infos = [n for n in names if n.endswith(".dist-info/WHEEL") and n.count("/") == 1]
    if len(infos) != 1:
        fail("%s: no single .dist-info/WHEEL" % path)
    distinfo = infos[0].split("/")[0]
    dataprefix = distinfo[: -len(".dist-info")] + ".data/"
    wheel = parse_kv(zf.read(infos[0]).decode("utf-8"))
    root = paths["purelib"] if wheel.get("root-is-purelib", "true").lower() == "true" else paths["platlib"]
    targets = {"purelib": paths["purelib"], "platlib": paths["platlib"], "scripts": paths["scripts"],
               "headers": os.path.join(paths["include"], distinfo.split("-")[0]), "data": paths["data"]}
    record = []
    compiled = []
    for info in zf.infolist():
        name = info.filename
        if name.endswith("/"):
            continue
        if posixpath.isabs(name) or ".." in name.split("/"):
            fail("%s: unsafe path %r" % (path, name))
        if name == distinfo + "/RECORD" or name.endswith(".dist-info/RECORD.jws") or name.endswith(".dist-info/RECORD.p7s"):
            continue
        content = zf.read(info)
        base, rel, is_script = root, name, False
        if name.startswith(dataprefix):
            key, _, rel = name[len(dataprefix):].partition("/")
            if key not in targets:
                fail("%s: unknown data directory %r" % (path, key))
            base, is_script = targets[key], key == "scripts"
        dest = os.path.join(base, *rel.split("/"))
        if is_script and content.startswith(b"#!python"):
            content = b"#!" + python.encode() + content[len(b"#!python"):]
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "wb") as out:
            out.write(content)
        mode = (info.external_attr >> 16) & 0o777
        if is_script or mode & 0o111:
            os.chmod(dest, 0o755)
        record.append((os.path.relpath(dest, root), b64hash(content), str(len(content))))
        if dest.endswith(".py") and base in (paths["purelib"], paths["platlib"]):
            compiled.append(dest)
    ep = distinfo + "/entry_points.txt"
    if ep in names:
        for script, ref in entry_points(zf.read(ep).decode("utf-8")):
            module, _, attr = ref.partition(":")
            if not attr:
                fail("%s: entry point %s=%s has no function" % (path, script, ref))
            text = SCRIPT.format(python=python, module=module.strip(), import_name=attr.split(".")[0].strip(), func=attr.strip()).encode()
            dest = os.path.join(paths["scripts"], script)
            with open(dest, "wb") as out:
                out.write(text)
            os.chmod(dest, 0o755)
            record.append((os.path.relpath(dest, root), b64hash(text), str(len(text))))
    installer = b"skillbuild\n"
    with open(os.path.join(root, distinfo, "INSTALLER"), "wb") as out:
        out.write(installer)
    record.append((distinfo + "/INSTALLER", b64hash(installer), str(len(installer))))
    for src in compiled:
        if compileall.compile_file(src, quiet=2, force=True):
            pyc = __import__("importlib.util").util.cache_from_source(src)
            if os.path.exists(pyc):
                with open(pyc, "rb") as f:
                    b = f.read()
                record.append((os.path.relpath(pyc, root), b64hash(b), str(len(b))))
    record.append((distinfo + "/RECORD", "", ""))
    with open(os.path.join(root, distinfo, "RECORD"), "w", newline="", encoding="utf-8") as out:
        w = csv.writer(out, lineterminator="\n")
        for row in record:
            w.writerow(row)
    if manifest is not None:
        for row in record:
            rel = os.path.relpath(os.path.normpath(os.path.join(root, row[0])), sys.prefix)
            manifest.write("%s\t%s\n" % (distinfo[: -len(".dist-info")], rel))


def main(argv):
    manifest = None
    if argv[:1] == ["--manifest"] and len(argv) > 1:
        manifest = open(argv[1], "w", encoding="utf-8")
        argv = argv[2:]
    if len(argv) % 2 or not argv:
        fail("usage: wheelinstall.py [--manifest OUT] SHA256 FILE [SHA256 FILE ...]")
    if sys.prefix == sys.base_prefix:
        fail("must run with the virtual environment's python")
    for i in range(0, len(argv), 2):
        install(argv[i + 1], argv[i], manifest)
    if manifest is not None:
        manifest.close()


if __name__ == "__main__":
    main(sys.argv[1:])
