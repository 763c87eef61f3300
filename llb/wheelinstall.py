"""Install wheels into the running virtual environment (PEP 427/491).

Usage: VENV/bin/python wheelinstall.py NAME VERSION SHA256 FILE [NAME VERSION SHA256 FILE ...]

skillbuild installs each locked distribution into its own layer. Starting
pip for that costs about a second per distribution (pip starts twice);
unpacking a wheel is a file operation, so this script does it with the
standard library in one interpreter start per layer.

A wheel is untrusted input, and this script runs as root inside the step,
so it checks everything it acts on:

- the file's sha256 must equal the lock's (nothing unverified is unpacked),
  and the wheel must be the distribution the lock names: one
  NAME-VERSION.dist-info whose METADATA has the lock's Name and Version;
- every path stays inside the virtual environment: archive members that
  are absolute or contain '..', empty components, backslashes or NUL are
  refused, and every file is created by walking the directories one by
  one from the venv root without following a symbolic link (openat with
  O_NOFOLLOW), so the venv's own links (bin/python, lib64) are never
  written through;
- a distribution only adds files of its own: every file (members of
  every scheme, entry-point scripts, INSTALLER, RECORD, .pyc) is created
  exclusively (O_CREAT|O_EXCL), so nothing that exists is replaced, and
  the paths of the venv's own layout are refused even where the venv has
  no file yet: pyvenv.cfg, lib64, bin/python*, bin/activate*, include/
  (but include/site/, where headers go), lib/pythonX.Y/ outside
  site-packages. The step installs on the venv alone, so anything that
  exists and this process did not write is the venv's (bin/pip when the
  venv has one); a file written twice (a duplicate member, an entry point
  over a script) is refused too, naming who wrote it first;
- files go to purelib or platlib (Root-Is-Purelib), and <name>.data/<key>/
  where pip puts them in a venv: scripts to bin/, headers to
  include/site/pythonX.Y/<name>/, purelib and platlib to site-packages,
  data to the venv root;
- '#!python' shebangs of .data/scripts are rewritten to this interpreter;
- console_scripts and gui_scripts from entry_points.txt get pip's wrapper;
  a script name must be a plain file name (no '/', '\\', NUL, '.' or
  '..') and the object reference a dotted name, as pip requires;
- .py files are byte-compiled as pip does, into checked-hash .pyc files
  (what py_compile writes under SOURCE_DATE_EPOCH: reproducible), created
  exclusively like every other file; a .pyc the wheel ships is kept;
- INSTALLER is written and RECORD rewritten with every installed file;
- everything it wrote, and every directory it wrote into (all of them in
  the step's layer), gets SOURCE_DATE_EPOCH as its modification time, so
  the layer's bytes depend only on the wheel (see mkvenv.py). Nothing
  else is touched: changing the time of a file of the venv would copy it
  into this layer.

No network, no build code: wheels only. Errors go to stderr, exit 1.
"""
import base64
import csv
import errno
import hashlib
import importlib._bootstrap_external
import importlib.machinery
import importlib.util
import io
import os
import re
import stat
import sys
import sysconfig
import zipfile

SCRIPT = """#!{python}
# -*- coding: utf-8 -*-
import re
import stat
import sys
from {module} import {import_name}
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit({func}())
"""

# An entry point's object reference: module[:attr[.attr...]] (PEP 517's
# and pip's pattern, without extras, which are cut before).
DOTTED = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


class Refused(Exception):
    pass


class VenvOwned(Refused):
    """A write the venv's own files or layout forbid."""


def b64hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_kv(text):
    out = {}
    for line in text.splitlines():
        if not line.strip():
            break  # headers end at the first empty line (the body follows)
        if ":" in line and not line[0].isspace():
            k, v = line.split(":", 1)
            out.setdefault(k.strip().lower(), v.strip())
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


def check_script_name(name):
    """A console script is a file directly in bin/: refuse anything else."""
    if (not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name
            or any(ord(c) < 32 for c in name)):
        raise Refused("unsafe console script name %r: it must be a plain file name" % name)


def split_member(name):
    """The components of an archive member's path, refusing any that could
    leave the directory it is unpacked into."""
    if "\0" in name or "\\" in name or name.startswith("/"):
        raise Refused("unsafe path %r" % name)
    parts = name.split("/")
    for p in parts:
        if p in ("", ".", ".."):
            raise Refused("unsafe path %r" % name)
    return parts


class Venv:
    """Writes files beneath the venv root and nowhere else: each directory
    is opened relative to its parent with O_NOFOLLOW, so no symbolic link,
    whether in the venv (bin/python, lib64) or made by an earlier write, is
    ever followed."""

    def __init__(self, root, paths=None):
        self.root = os.path.realpath(root)
        # What this process wrote: files (each with the distribution that
        # wrote it), and the directories written into (each one on the way
        # from the root to a file).
        self.files = {}
        self.dirs = {self.root}
        self.writer = "?"  # the distribution being installed
        paths = paths or sysconfig.get_paths()
        self.sites = [self.rel(paths[k]) for k in ("purelib", "platlib")]

    def owned(self, parts):
        """Whether parts (below the root) is a path of the venv's own
        layout, whether or not the venv has a file there."""
        top, rest = parts[0], parts[1:]
        if top in ("pyvenv.cfg", "lib64"):
            return True
        if top == "include":
            return not (len(rest) > 1 and rest[0] == "site")
        if top == "bin" and rest:
            return rest[0].startswith("python") or rest[0].lower().startswith("activate")
        if top == "lib" and rest and rest[0].startswith("python"):
            return not any(len(parts) > len(site) and parts[: len(site)] == site for site in self.sites)
        return False

    def rel(self, path):
        """path (absolute, inside the venv) as components below the root."""
        path = os.path.normpath(path)
        if path != self.root and not path.startswith(self.root + os.sep):
            raise Refused("%s is outside the virtual environment %s" % (path, self.root))
        rest = path[len(self.root):].strip(os.sep)
        return rest.split(os.sep) if rest else []

    def _open_dir(self, parts):
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for i, p in enumerate(parts):
                try:
                    nfd = os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except FileNotFoundError:
                    os.mkdir(p, 0o755, dir_fd=fd)
                    nfd = os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise Refused("refusing to write through %s: it is a symbolic link or not a directory"
                                      % os.path.join(self.root, *parts[: i + 1]))
                    raise
                os.close(fd)
                fd = nfd
                self.dirs.add(os.path.join(self.root, *parts[: i + 1]))
            return fd
        except BaseException:
            os.close(fd)
            raise

    def write(self, parts, content, mode, what=None):
        """Create root/parts[...] with content: a new regular file, never
        through a link, never over anything that exists. what names the
        source (an archive member) in a refusal."""
        if not parts:
            raise Refused("cannot write the virtual environment's root")
        path = os.path.join(self.root, *parts)
        source = " (from %r)" % what if what else ""
        if self.owned(parts):
            raise VenvOwned("it writes %s%s, which belongs to the virtual environment" % (path, source))
        dfd = self._open_dir(parts[:-1])
        try:
            try:
                fd = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=dfd)
            except FileExistsError:
                if path in self.files:
                    who = "it" if self.files[path] == self.writer else self.files[path]
                    raise Refused("it writes %s%s, which %s already wrote: no file may be replaced"
                                  % (path, source, who))
                raise VenvOwned("it writes %s%s, which belongs to the virtual environment" % (path, source))
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
                    raise Refused("refusing to write %s: it is a symbolic link or not a regular file"
                                  % os.path.join(self.root, *parts))
                raise
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise Refused("refusing to write %s: not a regular file" % os.path.join(self.root, *parts))
                view = memoryview(content)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
        finally:
            os.close(dfd)
        self.files[path] = self.writer
        return path

    def settle_times(self, epoch):
        """Sets the modification time of everything written to epoch.
        Only paths write walked (no symbolic link on the way) are touched,
        and never through a link."""
        times = (epoch * 10**9, epoch * 10**9)
        for p in sorted(self.files) + sorted(self.dirs, key=len, reverse=True):
            os.utime(p, ns=times, follow_symlinks=False)


def byte_compile(src, source):
    """The checked-hash .pyc of source (the file src), as py_compile makes
    it when SOURCE_DATE_EPOCH is set, or None when it does not compile
    (pip skips those too)."""
    try:
        code = importlib.machinery.SourceFileLoader("<wheelinstall>", src).source_to_code(source, src)
    except Exception:  # noqa: BLE001 - as py_compile: whatever stops compiling
        return None
    return bytes(importlib._bootstrap_external._code_to_hash_pyc(code, importlib.util.source_hash(source), True))


def install(venv, path, want_name, want_version, want):
    with open(path, "rb") as f:
        data = f.read()
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        raise Refused("sha256 %s does not match the lock's %s" % (got, want))
    venv.writer = "%s %s" % (want_name, want_version)
    paths = sysconfig.get_paths()
    python = os.path.join(paths["scripts"], "python")
    zf = zipfile.ZipFile(io.BytesIO(data))
    names = zf.namelist()
    infos = [n for n in names if n.endswith(".dist-info/WHEEL") and n.count("/") == 1]
    if len(infos) != 1:
        raise Refused("no single .dist-info/WHEEL")
    distinfo = infos[0].split("/")[0]
    tops = {n.split("/")[0] for n in names if "/" in n}
    extra = sorted(t for t in tops if t.endswith(".dist-info") and t != distinfo)
    if extra:
        raise Refused("more than one .dist-info directory: %s" % ", ".join([distinfo] + extra))
    stem = distinfo[: -len(".dist-info")]
    dname, sep, dversion = stem.partition("-")
    if not sep or normalize(dname) != normalize(want_name) or dversion not in (want_version, want_version.replace("-", "_")):
        raise Refused("contains %s, not the locked %s %s" % (distinfo, want_name, want_version))
    meta_name = distinfo + "/METADATA"
    if meta_name not in names:
        raise Refused("%s has no METADATA" % distinfo)
    meta = parse_kv(zf.read(meta_name).decode("utf-8", "replace"))
    if normalize(meta.get("name", "")) != normalize(want_name) or meta.get("version", "") != want_version:
        raise Refused("its METADATA names %s %s, not the locked %s %s"
                      % (meta.get("name", "?"), meta.get("version", "?"), want_name, want_version))
    dataprefix = stem + ".data/"
    wheel = parse_kv(zf.read(infos[0]).decode("utf-8"))
    purelib = venv.rel(paths["purelib"])
    platlib = venv.rel(paths["platlib"])
    root = purelib if wheel.get("root-is-purelib", "true").lower() == "true" else platlib
    pyver = "python%d.%d" % sys.version_info[:2]
    # pip's scheme for a virtual environment (never the base's include dir).
    targets = {"purelib": purelib, "platlib": platlib, "scripts": venv.rel(paths["scripts"]),
               "headers": ["include", "site", pyver, meta.get("name", dname)], "data": []}
    check_script_name(targets["headers"][-1])
    record = []
    compiled = []
    rootdir = os.path.join(venv.root, *root)

    def add(dest, content):
        record.append((os.path.relpath(dest, rootdir), b64hash(content), str(len(content))))

    for info in zf.infolist():
        name = info.filename
        if name.endswith("/"):
            split_member(name[:-1])
            continue
        parts = split_member(name)
        if name in (distinfo + "/RECORD", distinfo + "/INSTALLER") or name.endswith(".dist-info/RECORD.jws") or name.endswith(".dist-info/RECORD.p7s"):
            continue  # written below (as pip does), or describing the RECORD replaced
        content = zf.read(info)
        base, rel, key = root, parts, None
        if name.startswith(dataprefix):
            key, rel = parts[1], parts[2:]
            if key not in targets:
                raise Refused("unknown data directory %r" % key)
            if not rel:
                raise Refused("unsafe path %r" % name)
            base = targets[key]
        is_script = key == "scripts"
        if is_script and content.startswith(b"#!python"):
            content = b"#!" + python.encode() + content[len(b"#!python"):]
        mode = 0o755 if is_script or (info.external_attr >> 16) & 0o111 else 0o644
        dest = venv.write(base + rel, content, mode, what=name)
        add(dest, content)
        if dest.endswith(".py") and base in (purelib, platlib):
            compiled.append((dest, content))
    ep = distinfo + "/entry_points.txt"
    if ep in names:
        for script, ref in entry_points(zf.read(ep).decode("utf-8")):
            check_script_name(script)
            module, _, attr = ref.partition(":")
            module, attr = module.strip(), attr.strip()
            if not attr:
                raise Refused("entry point %s=%s has no function" % (script, ref))
            if not DOTTED.match(module) or not DOTTED.match(attr):
                raise Refused("entry point %s=%s is not a module:function reference" % (script, ref))
            text = SCRIPT.format(python=python, module=module, import_name=attr.split(".")[0], func=attr).encode()
            add(venv.write(targets["scripts"] + [script], text, 0o755, what="entry point " + script), text)
    installer = b"skillbuild\n"
    add(venv.write(root + [distinfo, "INSTALLER"], installer, 0o644), installer)
    for src, source in compiled:
        pyc = importlib.util.cache_from_source(src)
        if pyc in venv.files:
            continue  # the wheel ships it: the distribution's own file
        code = byte_compile(src, source)
        if code is not None:
            add(venv.write(venv.rel(pyc), code, 0o644), code)
    record.append((distinfo + "/RECORD", "", ""))
    out = io.StringIO(newline="")
    w = csv.writer(out, lineterminator="\n")
    for row in record:
        w.writerow(row)
    venv.write(root + [distinfo, "RECORD"], out.getvalue().encode("utf-8"), 0o644)


def main(argv):
    if len(argv) % 4 or not argv:
        sys.stderr.write("usage: wheelinstall.py NAME VERSION SHA256 FILE [NAME VERSION SHA256 FILE ...]\n")
        return 2
    if sys.prefix == sys.base_prefix:
        sys.stderr.write("wheelinstall: must run with the virtual environment's python\n")
        return 2
    venv = Venv(sys.prefix)
    for i in range(0, len(argv), 4):
        name, version, sha, path = argv[i:i + 4]
        try:
            install(venv, path, name, version, sha)
        except (Refused, zipfile.BadZipFile, UnicodeDecodeError) as e:
            sys.stderr.write("wheelinstall: %s %s (%s): refused: %s\n" % (name, version, os.path.basename(path), e))
            return 1
    venv.settle_times(int(os.environ.get("SOURCE_DATE_EPOCH", "0")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
