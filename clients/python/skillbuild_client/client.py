"""The client: HTTP/1.1 over a unix socket or loopback TCP, JSON in and out."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import socket
import urllib.parse
from types import TracebackType
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Type, Union

DEFAULT_SOCKET = "/run/skillbuild/api.sock"
EXIT_HEADER = "X-Skillbuild-Exit-Code"

#: A decoded JSON document of the API (the command's --json output).
Document = Dict[str, Any]
#: Called with each build progress event (BuildKit's SolveStatus, decoded).
Progress = Callable[[Any], None]
#: Seconds, or a duration as the server reads it ("30s", "2m").
Duration = Union[int, float, str]
#: Bytes, or a size as the server reads it ("256m").
Size = Union[int, str]


class SkillbuildError(Exception):
    """A request the server answered with an error.

    exit_code is the CLI's exit code for the same failure, status the HTTP
    status, document the decoded answer (the command's --json document,
    or {"error": ..., "exit_code": ...}).
    """

    exit_code: int = 1

    def __init__(self, message: str, exit_code: Optional[int] = None, status: Optional[int] = None, document: Any = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
        self.status: Optional[int] = status
        self.document: Any = document


class Failed(SkillbuildError):
    """The build or run failed (exit code 1)."""

    exit_code = 1


class BadInput(SkillbuildError):
    """The request was invalid (exit code 2)."""

    exit_code = 2


class Vulnerable(SkillbuildError):
    """The install was refused for known vulnerabilities (exit code 3);
    document["vulnerabilities"] lists them."""

    exit_code = 3


class NotFound(SkillbuildError):
    """The skill, image or database does not exist (exit code 4)."""

    exit_code = 4


class Temporary(SkillbuildError):
    """Try again later: containerd unreachable, state busy (exit code 75)."""

    exit_code = 75


class SessionEnded(NotFound):
    """A call on a session that has ended (exit code 4); reason says why:
    "timeout", "oom", "exited", "lifetime", "idle", "closed", "shutdown"."""

    def __init__(self, message: str, exit_code: Optional[int] = None, status: Optional[int] = None, document: Any = None) -> None:
        super().__init__(message, exit_code=exit_code, status=status, document=document)
        self.reason: str = message[len(_ENDED):].strip() if message.startswith(_ENDED) else ""


_ENDED = "session ended:"


class Result(Dict[str, Any]):
    """A decoded run document, its fields also attributes (r.result,
    r.stdout, r.files, r.session_ended; a field the document does not
    have is None)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self.get(name)


_BY_CODE: Dict[int, Type[SkillbuildError]] = {1: Failed, 2: BadInput, 3: Vulnerable, 4: NotFound, 75: Temporary}


def error_for(exit_code: int, status: Optional[int], document: Any) -> SkillbuildError:
    """The exception for an answer with exit_code (from the header or the
    document), status and document."""
    cls = _BY_CODE.get(exit_code, Failed)
    message: Any = None
    if isinstance(document, dict):
        message = document.get("error")
        if isinstance(message, dict):  # a run's error is {"type", "message"}
            message = "%s: %s" % (message.get("type"), message.get("message"))
    if not message:
        message = "HTTP %s" % status
    if exit_code == 4 and str(message).startswith(_ENDED):
        cls = SessionEnded
    return cls(str(message), exit_code=exit_code, status=status, document=document)


def _files_in(files: Optional[Mapping[str, Union[bytes, bytearray, str]]]) -> Optional[Dict[str, str]]:
    """A run's files (name -> bytes; a str is UTF-8) as the API takes
    them: name -> standard base64."""
    if files is None:
        return None
    out: Dict[str, str] = {}
    for name, content in files.items():
        if isinstance(content, str):
            content = content.encode("utf-8")
        if not isinstance(content, (bytes, bytearray)):
            raise TypeError("files[%r] must be bytes or str, got %r" % (name, type(content)))
        out[name] = base64.b64encode(bytes(content)).decode("ascii")
    return out


def _result(doc: Any) -> Result:
    """A run document with its files' content decoded to bytes (None
    when omitted) and checked against their sha256."""
    r = Result(doc if isinstance(doc, dict) else {})
    for f in r.get("files") or []:
        if f.get("omitted") or "content" not in f:
            f["content"] = None
            continue
        content = base64.b64decode(f["content"])
        if len(content) != f.get("size") or hashlib.sha256(content).hexdigest() != f.get("sha256"):
            raise Failed("file %r of the answer does not match its size and sha256" % f.get("name"), document=doc)
        f["content"] = content
    return r


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: Optional[float]) -> None:
        super().__init__("skillbuild", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _duration(v: Optional[Duration]) -> Optional[str]:
    """A timeout as the server reads it: seconds (int or float) or a
    string with a unit ("30s", "2m")."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError("timeout must be seconds or a string like '30s', got %r" % (v,))
    return "%gs" % v if float(v) != int(v) else "%ds" % int(v)


def _size(v: Optional[Size]) -> Optional[str]:
    """A size as the server reads it: bytes (int) or a string with a unit
    ("256m")."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError("sizes are bytes (int) or a string like '256m', got %r" % (v,))
    return str(v)


def _set_options(body: Document, version: Optional[Union[str, int]], memory: Optional[Size], options: Mapping[str, Any]) -> None:
    """Put a run's or a session's version, memory and other options
    (run's flags, by their API names) into a request body."""
    if version is not None:
        body["version"] = str(version)
    if memory is not None:
        body["memory"] = _size(memory)
    for k, v in options.items():
        body[k] = _size(v) if k in ("tmpfs_size", "output_limit") else (str(v) if k in ("cpus", "pids") else v)


class Client:
    """A connection to `skillbuild serve`.

    target is the unix socket's path (or unix:///path), or
    http://127.0.0.1:PORT for a server on loopback TCP, which needs the
    token of its --token-file. timeout bounds each request, in seconds
    (None: no bound; a run is bounded by its own timeout anyway).
    """

    def __init__(self, target: str = DEFAULT_SOCKET, token: Optional[str] = None, timeout: Optional[float] = None) -> None:
        self._token: Optional[str] = token.strip() if token else None
        self._timeout = timeout
        self._unix: Optional[str] = None
        self._host: Optional[str] = None
        self._port: Optional[int] = None
        if target.startswith("unix://"):
            target = urllib.parse.urlparse(target).path
        if target.startswith("/"):
            self._unix = target
        else:
            u = urllib.parse.urlparse(target)
            if u.scheme != "http" or not u.hostname:
                raise ValueError("target must be a socket path, unix:///path or http://127.0.0.1:PORT, got %r" % target)
            self._host, self._port = u.hostname, u.port or 80

    def _connect(self) -> http.client.HTTPConnection:
        if self._unix:
            return _UnixConnection(self._unix, self._timeout)
        assert self._host is not None
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)

    def _request(self, method: str, path: str, body: Optional[Document] = None, stream: Optional[Progress] = None) -> Any:
        conn = self._connect()
        try:
            headers = {"Accept": "application/json"}
            data = None
            if body is not None:
                data = json.dumps(body).encode("utf-8")
                headers["Content-Type"] = "application/json"
            if self._token:
                headers["Authorization"] = "Bearer " + self._token
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
            except (ConnectionError, FileNotFoundError, socket.timeout) as exc:
                raise Temporary("cannot reach skillbuild serve at %s: %s" % (self._unix or "%s:%s" % (self._host, self._port), exc)) from exc
            if (resp.getheader("Content-Type") or "").startswith("application/x-ndjson"):
                return self._read_stream(resp, stream)
            raw = resp.read()
            doc: Any
            try:
                doc = json.loads(raw.decode("utf-8")) if raw else None
            except ValueError:
                doc = {"error": raw.decode("utf-8", "replace")}
            header = resp.getheader(EXIT_HEADER)
            code = int(header) if header and header.isdigit() else (0 if resp.status < 400 else 1)
            if code != 0 or resp.status >= 400:
                raise error_for(code or 1, resp.status, doc)
            return doc
        finally:
            conn.close()

    @staticmethod
    def _read_stream(resp: http.client.HTTPResponse, on_progress: Optional[Progress]) -> Any:
        while True:
            line = resp.readline()
            if not line:
                raise Failed("the server ended the stream without a result", status=resp.status)
            event = json.loads(line.decode("utf-8"))
            if "exit_code" in event:
                code, doc = event["exit_code"], event.get("result")
                if code != 0:
                    raise error_for(code, resp.status, doc)
                return doc
            if on_progress is not None:
                on_progress(event.get("progress"))

    def health(self) -> Document:
        """The server's health document; raises Temporary when containerd
        is down."""
        doc: Document = self._request("GET", "/v1/health")
        return doc

    def install(self, skill_id: str, requirements: Iterable[str], version: Union[str, int] = "1",
                progress: Optional[Progress] = None, **options: Any) -> Document:
        """Build (or reuse) the skill's image; returns `install --json`'s
        document. options are install's other flags with underscores
        (index_url, base, allow, no_scan, refresh, ...) and preload, the
        modules warm containers of the skill import ahead of a run.
        progress, if given, is called with each BuildKit status event while
        the build runs."""
        body = dict(options, skill_id=skill_id, requirements=list(requirements), version=str(version))
        if progress is not None:
            body["progress"] = True
        doc: Document = self._request("POST", "/v1/install", body, stream=progress)
        return doc

    def scan(self, requirements: Iterable[str], **options: Any) -> Document:
        """Resolve and scan requirements like install would; returns `scan
        --json`'s document; raises Vulnerable when they are not safe."""
        doc: Document = self._request("POST", "/v1/scan", dict(options, requirements=list(requirements)))
        return doc

    def run(self, skill_id: str, code: str, inputs: Optional[Document] = None, timeout: Optional[Duration] = None,
            memory: Optional[Size] = None, version: Optional[Union[str, int]] = None,
            files: Optional[Mapping[str, Union[bytes, str]]] = None, **options: Any) -> Result:
        """Run code in the skill's image with inputs (a dict) as the global
        `inputs`; returns `run --json`'s document: exit_code, stdout,
        stderr, result, error, timed_out, oom_killed, truncated,
        duration_ms. timeout is seconds or "30s", memory bytes or "256m";
        options are run's other flags (cpus, pids, tmpfs_size,
        output_limit, runtime, image, user) and preload, a list of modules a warm
        container imports before the run (default: the skill's own
        `preload` list from its skill.yaml). files (name -> bytes) are put
        under /data/in, read-only; what the code writes under /data/out
        comes back in the document's files: [{name, size, sha256,
        content (bytes; None when omitted), omitted}], and files_omitted
        counts those beyond the ones listed. The document's fields are
        also attributes (doc.result)."""
        body: Document = {"skill_id": skill_id, "code": code, "inputs": inputs if inputs is not None else {}}
        if files is not None:
            body["files"] = _files_in(files)
        if timeout is not None:
            body["timeout"] = _duration(timeout)
        _set_options(body, version, memory, options)
        return _result(self._request("POST", "/v1/run", body))

    def session(self, skill_id: str, version: Optional[Union[str, int]] = None, memory: Optional[Size] = None,
                idle_timeout: Optional[Duration] = None, max_lifetime: Optional[Duration] = None, **options: Any) -> "Session":
        """Open a session: a container of the skill's image whose
        interpreter serves a sequence of calls, keeping its globals,
        imported modules and files between them. Use it in a with-block
        (it ends on exit) or call close(). options are the limits and
        settings of run that hold for the whole session (cpus, pids,
        tmpfs_size, user, runtime, image, repo, preload); idle_timeout and
        max_lifetime (seconds or "5m") end it, within the server's
        ceilings. Only this caller (the same uid on the unix socket, the
        token on TCP) can use it."""
        body: Document = {"skill_id": skill_id}
        if idle_timeout is not None:
            body["idle_timeout"] = _duration(idle_timeout)
        if max_lifetime is not None:
            body["max_lifetime"] = _duration(max_lifetime)
        _set_options(body, version, memory, options)
        doc: Document = self._request("POST", "/v1/sessions", body)
        return Session(self, doc)

    def sessions(self) -> List[Document]:
        """This caller's open sessions."""
        doc: Document = self._request("GET", "/v1/sessions")
        sessions: List[Document] = doc.get("sessions") or []
        return sessions

    def list(self, unpacked: bool = False) -> List[Document]:
        """The skill images: `ls --json`'s array (unpacked: with each
        image's unpacked size, as `ls --unpacked`)."""
        docs: List[Document] = self._request("GET", "/v1/skills?unpacked=true" if unpacked else "/v1/skills")
        return docs

    def remove(self, skill_id: str, version: Optional[Union[str, int]] = None) -> Document:
        """Remove the skill's tags (one version, or all); returns `rm
        --json`'s document; raises NotFound when there was none."""
        body: Document = {"skill_id": skill_id}
        if version is not None:
            body["version"] = str(version)
        doc: Document = self._request("POST", "/v1/remove", body)
        return doc

    def inspect(self, skill_id: Optional[str] = None, version: Optional[Union[str, int]] = None,
                repo: Optional[str] = None, ref: Optional[str] = None) -> Document:
        """Describe a skill's image (or the image ref names): `inspect
        --json`'s document with its lock, labels, SBOM and scan verdict;
        raises NotFound when the server has no such image."""
        if (skill_id is None) == (ref is None):
            raise ValueError("give skill_id or ref, not both")
        body: Document = {"ref": ref} if ref is not None else {"skill_id": skill_id}
        if version is not None:
            body["version"] = str(version)
        if repo is not None:
            body["repo"] = repo
        doc: Document = self._request("POST", "/v1/inspect", body)
        return doc

    def openapi(self) -> Document:
        """The API's OpenAPI 3.1 document."""
        doc: Document = self._request("GET", "/v1/openapi.json")
        return doc

    # The names of the platform's former in-process helpers, so that a
    # platform switches with a few lines.
    def install_packages(self, skill_id: str, packages: Iterable[str], version: Union[str, int] = "1", **options: Any) -> Document:
        return self.install(skill_id, packages, version=version, **options)

    def execute_with_packages(self, skill_id: str, code: str, inputs: Optional[Document] = None, **options: Any) -> Document:
        return self.run(skill_id, code, inputs, **options)


class Session:
    """An open session (Client.session). id is its session_id, info the
    server's document (limits, idle_timeout, max_lifetime, expires_at),
    ended why it ended ("" while it goes on, as far as this object knows)."""

    def __init__(self, client: Client, info: Document) -> None:
        self._client = client
        self.info: Document = info
        self.id: str = info["session_id"]
        self.ended: str = ""

    def run(self, code: str, inputs: Optional[Document] = None, files: Optional[Mapping[str, Union[bytes, str]]] = None,
            timeout: Optional[Duration] = None, output_limit: Optional[Size] = None) -> Result:
        """Run code in the session's interpreter with inputs as the global
        `inputs` and files added under /data/in (kept for later calls);
        returns the run document (r.result, r.stdout, r.files, ...) with
        r.session_ended set when this call ended the session (it timed
        out, was OOM-killed, or its interpreter exited). Raises
        SessionEnded, with its reason, on a session that has ended."""
        body: Document = {"code": code, "inputs": inputs if inputs is not None else {}}
        if files is not None:
            body["files"] = _files_in(files)
        if timeout is not None:
            body["timeout"] = _duration(timeout)
        if output_limit is not None:
            body["output_limit"] = _size(output_limit)
        try:
            r = _result(self._client._request("POST", "/v1/sessions/%s/run" % urllib.parse.quote(self.id, safe=""), body))
        except SessionEnded as e:
            self.ended = e.reason or self.ended
            raise
        if r.get("session_ended"):
            self.ended = r["session_ended"]
        return r

    def close(self) -> None:
        """End the session and remove its container; a session that had
        ended already is left as it is."""
        try:
            self._client._request("DELETE", "/v1/sessions/%s" % urllib.parse.quote(self.id, safe=""))
            self.ended = self.ended or "closed"
        except NotFound:
            pass

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.close()
