"""skillbuild runner: runs skill code inside its sandbox and reports.

skillbuild ships this file inside its binary and bind-mounts it read-only
into every run, next to the skill code; it works with any image that has a
python3 on PATH and uses the standard library only.

    python3 -B runner.py CODE_FILE REPORT_SOCKET [--rlimit-as=BYTES] [MODULE...]

* The MODULEs (the skill's preload list) are imported first, before the
  inputs are read: a warm container has them imported when its job
  comes. One that fails to import is skipped (the code's own import then
  reports it). Then the runner sends a newline to REPORT_SOCKET: it is
  ready for its job.
* With --rlimit-as (sandboxes without cgroups) the runner first sets
  RLIMIT_AS, soft and hard, to BYTES (the code runs without capabilities
  and cannot raise it again), and exits with status 128+SIGXCPU when
  RLIMIT_CPU's soft limit is reached, so the host can tell why. If the
  limit cannot be set the runner reports RlimitError and runs nothing.
* stdin carries the inputs: one JSON object, UTF-8, compact (no raw
  newline), then a newline. The code's stdin is /dev/null.
* CODE_FILE is executed as __main__ with a global ``inputs`` (that object,
  as a dict). The code is never spliced into another source string.
* If the code sets a global ``result``, it is encoded as JSON (no NaN or
  Infinity, ASCII only) and reported.
* The report, one JSON object (after that newline), goes to REPORT_SOCKET,
  never to stdout or stderr: whatever the code prints stays the code's
  output and cannot break the report. REPORT_SOCKET is an abstract unix
  socket ("@name") of the init, PID 1, which passes on to the host what
  this process sends and nothing any other process does (the kernel says
  who sent what): a process the code forks, which inherits everything
  this one has open, can neither send a report nor add to one. Each
  message goes over a connection of its own, made when it is sent, so
  nothing the code forks holds one.

    {"exit_code": 0, "error": null | {"type", "message", "traceback"},
     "result_set": true | false, "result": <the result JSON>}

    with, when the code left files under OUT_DIR (created or changed
    since the previous call of a session), "files": [{"name", "size",
    "sha256", "content" (base64) | "omitted": true}, ...] in name order
    (regular files only, no link followed; at most MAX_OUT_FILES, their
    content within MAX_OUT_BYTES together) and "files_omitted": the
    count of those past MAX_OUT_FILES or that cannot be listed.

A session: when the first stdin line is ``session`` (not a JSON object),
the runner serves calls until stdin ends. Each call is one line
``{"inputs": {...}, "mark": "<hex>"}``; the host has put the call's code
in CODE_FILE before. The code runs in the session's namespace (globals
and imports persist; ``inputs`` is replaced and ``result`` deleted
before each call; SystemExit ends the call, not the session). After the
code the runner flushes, writes ``\0skillbuild-end-<mark>\0`` to fd 1
and fd 2 (where the host splits the output between calls) and sends the
call's report with a newline after it.

The runner exits with the code's exit status (0, 1 after an exception,
or the SystemExit status), without waiting for threads the code left
running.
"""

import os
import sys

# json and traceback are imported only when a run needs them (inputs other
# than {}, a result, an exception): with the modules they pull in (re,
# enum, linecache, ...) they cost more than starting the interpreter, and
# most runs need neither. The report's strings are escaped by _json, json's
# C half, which imports nothing else.
try:
    from _json import encode_basestring_ascii as _quote
except ImportError:  # an interpreter without the C module
    _quote = None
# The report channel's socket, from the C module: the socket module
# imports enum, selectors and more.
from _socket import AF_UNIX as _AF_UNIX, SCM_CREDENTIALS as _SCM_CREDENTIALS, SHUT_WR as _SHUT_WR, SOCK_STREAM as _SOCK_STREAM, SOL_SOCKET as _SOL_SOCKET, socket as _socket


def _send(address, data):
    """Sends data to the init over a new connection to address.

    Every write carries this process's credentials, which the kernel
    checks (a process cannot claim another's pid) and the init compares
    with its child's: gVisor passes on only credentials the sender gave.

    It returns once the init has read all of data: the init closes its
    end only at the end of what was sent. This process must not exit
    before: gVisor names the sender's pid when the init reads, not when
    this process writes, and once the init has reaped this process what
    is left unread carries pid 0 and is dropped as not the child's.
    """
    order = sys.byteorder
    creds = [(_SOL_SOCKET, _SCM_CREDENTIALS, os.getpid().to_bytes(4, order) + os.getuid().to_bytes(4, order) + os.getgid().to_bytes(4, order))]
    s = _socket(_AF_UNIX, _SOCK_STREAM)
    try:
        s.settimeout(None)  # whatever default the code set
        s.connect(address)
        view = memoryview(data)
        while view:
            view = view[s.sendmsg([view], creds):]
        s.shutdown(_SHUT_WR)
        while s.recv(1):  # the init sends nothing: its end closes
            pass
    finally:
        s.close()


def _type_name(exc):
    t = type(exc)
    mod = getattr(t, "__module__", "builtins")
    if mod in ("builtins", "__main__", None):
        return t.__qualname__
    return mod + "." + t.__qualname__


def _describe(exc, tb):
    try:
        message = str(exc)
    except BaseException:  # a broken __str__ must not hide the error
        message = "<unprintable %s>" % type(exc).__name__
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, tb))
    return {"type": _type_name(exc), "message": message, "traceback": text}


def _json_module():
    import json

    return json


def _quoted(text):
    if _quote is not None:
        return _quote(text)
    return _json_module().dumps(text, ensure_ascii=True)


def _report(exit_code, error, result_json, files=""):
    """The report, one line of ASCII JSON, written without the json module;
    files is _out_files's part."""
    if error is None:
        err = "null"
    else:
        err = "{%s}" % ", ".join(
            "%s: %s" % (_quoted(k), _quoted(str(error.get(k, "")))) for k in ("type", "message", "traceback")
        )
    return '{"exit_code": %d, "error": %s, "result_set": %s, "result": %s%s}' % (
        exit_code,
        err,
        "false" if result_json is None else "true",
        "null" if result_json is None else result_json,
        files,
    )


# Where the code leaves files for the caller, and the caps on what is
# returned (files.go's OutDir, MaxOutFiles and MaxOutBytes).
OUT_DIR = "/data/out"
MAX_OUT_FILES = 64
MAX_OUT_BYTES = 16 << 20


def _walk_out(top):
    """(name, path, stat) of the regular files under top, no link followed."""
    found = []
    stack = [("", top)]
    while stack:
        prefix, d = stack.pop()
        try:
            with os.scandir(d) as it:
                entries = list(it)
        except OSError:
            continue
        for e in entries:
            name = prefix + e.name
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append((name + "/", e.path))
                elif e.is_file(follow_symlinks=False):
                    found.append((name, e.path, e.stat(follow_symlinks=False)))
            except OSError:
                pass
    found.sort()
    return found


def _out_files(stamps):
    """The report's files part for what changed under OUT_DIR since stamps
    (a dict of name -> (size, mtime_ns, inode), updated in place): "" when
    nothing did."""
    found = _walk_out(OUT_DIR)
    changed = []
    seen = set()
    for name, p, st in found:
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        seen.add(name)
        if stamps.get(name) != stamp:
            stamps[name] = stamp
            changed.append((name, p))
    for name in [n for n in stamps if n not in seen]:
        del stamps[name]
    if not changed:
        return ""
    import binascii
    import hashlib

    omitted = max(0, len(changed) - MAX_OUT_FILES)
    budget = MAX_OUT_BYTES
    parts = []
    for name, p in changed[:MAX_OUT_FILES]:
        try:
            quoted = _quoted(name.encode("utf-8").decode("utf-8"))
        except UnicodeError:  # a name that is not UTF-8 cannot be named
            omitted += 1
            continue
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            omitted += 1
            continue
        try:
            import stat as _stat

            st = os.fstat(fd)
            if not _stat.S_ISREG(st.st_mode):
                omitted += 1
                continue
            h = hashlib.sha256()
            size = 0
            kept = []
            keep = st.st_size <= budget
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                size += len(chunk)
                h.update(chunk)
                if keep and size <= budget:
                    kept.append(chunk)
                else:
                    keep = False
                    kept = []
        except OSError:
            omitted += 1
            continue
        finally:
            os.close(fd)
        if keep:
            budget -= size
            tail = '"content": "%s"' % binascii.b2a_base64(b"".join(kept), newline=False).decode("ascii")
        else:
            tail = '"omitted": true'
        parts.append('{"name": %s, "size": %d, "sha256": "%s", %s}' % (quoted, size, h.hexdigest(), tail))
    return ', "files": [%s], "files_omitted": %d' % (", ".join(parts), omitted)


def _flush():
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except BaseException:
            pass


def _rlimit_mode(limit):
    import resource
    import signal

    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def on_xcpu(signum, frame):
        _flush()
        os._exit(128 + signum)

    signal.signal(signal.SIGXCPU, on_xcpu)


def main():
    code_path, report_address = sys.argv[1], sys.argv[2]
    if report_address.startswith("@"):
        report_address = "\0" + report_address[1:]
    modules = sys.argv[3:]
    as_limit = 0
    if modules and modules[0].startswith("--rlimit-as="):
        as_limit = int(modules.pop(0)[len("--rlimit-as="):])
    # The runner's directory (which holds the code file) is not an import
    # location: `import code` must find the standard library module.
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or ".") == here:
        del sys.path[0]

    # Keep private references to what reporting needs, so the code cannot
    # break them by accident (it shares this interpreter and can of course
    # lie about its own result on purpose).
    report, send, exit_now = _report, _send, os._exit

    exit_code = 0
    error = None
    result_json = None

    if as_limit > 0:
        try:
            _rlimit_mode(as_limit)
        except BaseException as exc:
            error = {"type": "RlimitError", "message": "cannot set the memory limit (RLIMIT_AS): %s" % exc, "traceback": ""}
            exit_code = 2

    for name in modules if error is None else []:
        try:
            __import__(name)
        except BaseException:
            pass

    # Ready: the modules are imported and the job may come. A newline on
    # the report channel says so (the report's JSON ignores it); a pool
    # hands a warm container its job only after it.
    try:
        send(report_address, b"\n")
    except BaseException:
        pass

    # The job comes on stdin; the code's stdin is empty, like a batch
    # job's. The runner reads the job through a descriptor of its own
    # (not inherited by what the code executes).
    try:
        jobs = os.fdopen(os.dup(0), "rb")
    except BaseException:
        jobs = sys.stdin.buffer
    try:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        sys.stdin = open(0, "r", closefd=False)
    except BaseException:
        pass

    # One line: the host sends compact JSON (no raw newline) and a newline,
    # and never closes the pipe, so do not wait for EOF.
    try:
        raw = jobs.readline().strip()
    except BaseException:
        raw = b""
    if raw == b"session" and error is None:
        _session(jobs, code_path, report_address)
        exit_now(0)

    try:
        jobs.close()
    except BaseException:
        pass
    try:
        inputs = _json_module().loads(raw.decode("utf-8")) if raw not in (b"", b"{}") else {}
        if not isinstance(inputs, dict):
            raise TypeError("inputs must be a JSON object, got %s" % type(inputs).__name__)
    except BaseException as exc:
        inputs = None
        if error is None:
            error = {"type": "InputError", "message": "cannot decode the inputs: %s" % exc, "traceback": ""}
            exit_code = 2

    files = ""
    if error is None:
        namespace = {
            "__name__": "__main__",
            "__file__": code_path,
            "__builtins__": __builtins__,
            "inputs": inputs,
        }
        exit_code, error, result_json = _run(namespace, code_path)
        files = _out_files({})

    _flush()
    text = report(exit_code, error, result_json, files)
    try:
        send(report_address, text.encode("ascii"))
    except BaseException:
        pass
    exit_now(exit_code)


def _run(namespace, code_path):
    """Runs the code in CODE_FILE in namespace: (exit code, error, result JSON)."""
    exit_code, error, result_json = 0, None, None
    try:
        with open(code_path, "rb") as f:
            source = f.read()
        code = compile(source, code_path, "exec", dont_inherit=True)
        exec(code, namespace)
    except SystemExit as exc:
        status = exc.code
        if status is None:
            exit_code = 0
        elif isinstance(status, int):
            exit_code = status & 0xFF
        else:
            try:
                print(status, file=sys.stderr)
            except BaseException:
                pass
            exit_code = 1
    except BaseException as exc:
        # Drop the runner's own frames: the traceback starts in the code
        # (a SyntaxError from compile has no frame of the code at all).
        tb = exc.__traceback__
        tb = tb.tb_next if tb is not None else None
        error = _describe(exc, tb)
        try:
            sys.stderr.write(error["traceback"])
        except BaseException:
            pass
        exit_code = 1

    if "result" in namespace:
        try:
            result_json = _json_module().dumps(namespace["result"], allow_nan=False, ensure_ascii=True)
        except BaseException as exc:
            result_json = None
            if error is None:
                error = {
                    "type": "ResultNotSerializable",
                    "message": "result is not JSON-serializable: %s: %s" % (type(exc).__name__, exc),
                    "traceback": "",
                }
                if exit_code == 0:
                    exit_code = 1
    return exit_code, error, result_json


def _write_all(fd, data):
    try:
        while data:
            data = data[os.write(fd, data):]
    except BaseException:
        pass


def _session(jobs, code_path, report_address):
    """Serves a session's calls (see the module's doc) until stdin ends."""
    report, send = _report, _send
    namespace = {"__name__": "__main__", "__file__": code_path, "__builtins__": __builtins__}
    stamps = {}
    _out_files(stamps)  # what a warm start left is no call's
    while True:
        try:
            line = jobs.readline()
        except BaseException:
            return
        if not line:
            return
        mark = ""
        try:
            job = _json_module().loads(line.decode("utf-8"))
            mark = job["mark"]
            inputs = job["inputs"]
            if not isinstance(mark, str) or not mark.isalnum():
                raise ValueError("bad mark")
            if not isinstance(inputs, dict):
                raise TypeError("inputs must be a JSON object, got %s" % type(inputs).__name__)
        except BaseException as exc:
            error = {"type": "InputError", "message": "cannot decode the call: %s" % exc, "traceback": ""}
            exit_code, result_json = 2, None
        else:
            namespace["inputs"] = inputs
            namespace.pop("result", None)
            exit_code, error, result_json = _run(namespace, code_path)
        files = _out_files(stamps)
        _flush()
        marker = ("\0skillbuild-end-%s\0" % mark).encode("ascii", "replace")
        _write_all(1, marker)
        _write_all(2, marker)
        try:
            send(report_address, (report(exit_code, error, result_json, files) + "\n").encode("ascii"))
        except BaseException:
            pass


if __name__ == "__main__":
    main()
