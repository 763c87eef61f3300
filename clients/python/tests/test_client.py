"""Unit tests of the client against a small in-process HTTP server that
answers like `skillbuild serve` (the Go integration suite drives the
client against the real one)."""

import base64
import hashlib
import http.server
import json
import os
import socketserver
import tempfile
import threading
import unittest

import skillbuild_client as sbc


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _answer(self, status, code, doc, ctype="application/json"):
        body = doc if isinstance(doc, bytes) else (json.dumps(doc) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("X-Skillbuild-Exit-Code", str(code))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.server.seen.append((self.command, self.path, None, self.headers.get("Authorization")))
        if self.path == "/v1/skills":
            self._answer(200, 0, [{"skill_id": "a", "version": "1"}])
        elif self.path == "/v1/skills?unpacked=true":
            self._answer(200, 0, [{"skill_id": "a", "version": "1", "unpacked_size": 4096}])
        elif self.path == "/v1/health":
            self._answer(503, 75, {"error": "containerd is not serving", "exit_code": 75})
        else:
            self._answer(404, 4, {"error": "no route"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append((self.command, self.path, body, self.headers.get("Authorization")))
        if self.path == "/v1/sessions":
            self._answer(201, 0, {"session_id": "s1", "skill_id": body["skill_id"], "idle_timeout": "5m0s"})
            return
        if self.path == "/v1/sessions/s1/run":
            if self.server.ended:
                self._answer(404, 4, {"error": "session ended: " + self.server.ended, "exit_code": 4})
                return
            doc = {"skill_id": "a", "exit_code": 0, "result": len(self.server.seen), "error": None}
            if body.get("timeout") == "1s":
                doc.update(timed_out=True, session_ended="timeout")
                self.server.ended = "timeout"
            self._answer(200, 0, doc)
            return
        if self.path == "/v1/run":
            if body.get("files"):
                out = [{"name": "out/" + n, "size": len(base64.b64decode(c)), "sha256": hashlib.sha256(base64.b64decode(c)).hexdigest(), "content": c}
                       for n, c in sorted(body["files"].items())]
                out.append({"name": "big", "size": 1 << 30, "sha256": "00", "omitted": True})
                if body["skill_id"] == "corrupt":
                    out[0]["sha256"] = "00"
                self._answer(200, 0, {"skill_id": "a", "exit_code": 0, "result": None, "error": None, "files": out, "files_omitted": 2})
                return
            if body["skill_id"] == "missing":
                self._answer(404, 4, {"skill_id": "missing", "error": {"type": "ImageNotFound", "message": "image not found, run `skillbuild install missing` first"}})
                return
            self._answer(200, 0, {"skill_id": body["skill_id"], "exit_code": 0, "result": body["inputs"], "error": None})
        elif self.path == "/v1/install":
            if body.get("progress"):
                lines = [{"progress": {"vertexes": [{"name": "resolve"}]}}, {"result": {"success": False, "error": "vulnerabilities detected", "vulnerabilities": [{"id": "PYSEC-1"}]}, "exit_code": 3}]
                self._answer(200, 3, b"".join(json.dumps(l).encode() + b"\n" for l in lines), "application/x-ndjson")
                return
            self._answer(200, 0, {"success": True, "skill_id": body["skill_id"]})
        elif self.path == "/v1/inspect":
            if body.get("skill_id") == "nope":
                self._answer(404, 4, {"error": "image atom-skill:nope-v1 not found in containerd", "exit_code": 4})
                return
            self._answer(200, 0, {"name": body.get("ref") or "docker.io/library/atom-skill:%s-v%s" % (body["skill_id"], body.get("version", "1"))})
        elif self.path == "/v1/remove":
            self._answer(404, 4, {"removed": [], "error": "no skill image nope"})
        else:
            self._answer(400, 2, {"error": "unknown field", "exit_code": 2})


    def do_DELETE(self):
        self.server.seen.append((self.command, self.path, None, self.headers.get("Authorization")))
        if self.server.ended:
            self._answer(404, 4, {"error": "session ended: " + self.server.ended, "exit_code": 4})
            return
        self.server.ended = "closed"
        self._answer(200, 0, {"session_id": "s1", "ended": "closed"})


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        req, _ = super().get_request()
        return req, ("local", 0)


class _TCPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


class ClientTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.sock = os.path.join(self.dir.name, "api.sock")
        self.srv = _UnixServer(self.sock, _Handler)
        self.srv.seen = []
        self.srv.ended = ""
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def tearDown(self):
        self.srv.shutdown()
        self.srv.server_close()
        self.dir.cleanup()

    def test_run_sends_the_request_and_returns_the_document(self):
        c = sbc.Client(self.sock)
        doc = c.run("a", "result = inputs", {"x": [1, 2]}, timeout=2.5, memory=64 << 20, cpus=0.5, version=3)
        self.assertEqual(doc["result"], {"x": [1, 2]})
        _, path, body, auth = self.srv.seen[-1]
        self.assertEqual(path, "/v1/run")
        self.assertEqual(body, {"skill_id": "a", "code": "result = inputs", "inputs": {"x": [1, 2]},
                                "version": "3", "timeout": "2.5s", "memory": str(64 << 20), "cpus": "0.5"})
        self.assertIsNone(auth)
        sbc.Client("unix://" + self.sock).run("a", "pass", timeout=10)
        self.assertEqual(self.srv.seen[-1][2]["timeout"], "10s")
        self.assertEqual(self.srv.seen[-1][2]["inputs"], {})

    def test_errors_carry_the_exit_code_class(self):
        c = sbc.Client(self.sock)
        with self.assertRaises(sbc.NotFound) as cm:
            c.run("missing", "pass")
        self.assertEqual(cm.exception.exit_code, 4)
        self.assertEqual(cm.exception.status, 404)
        self.assertIn("skillbuild install missing", str(cm.exception))
        self.assertEqual(cm.exception.document["error"]["type"], "ImageNotFound")
        with self.assertRaises(sbc.NotFound):
            c.remove("nope")
        with self.assertRaises(sbc.Temporary) as cm:
            c.health()
        self.assertEqual(cm.exception.exit_code, 75)
        with self.assertRaises(sbc.BadInput):
            c.scan(["x"])
        self.assertTrue(issubclass(sbc.Vulnerable, sbc.SkillbuildError))

    def test_install_streams_progress_then_raises_the_refusal(self):
        c = sbc.Client(self.sock)
        self.assertEqual(c.install("a", ["pkgx==1.0"])["success"], True)
        self.assertEqual(self.srv.seen[-1][2], {"skill_id": "a", "requirements": ["pkgx==1.0"], "version": "1"})
        events = []
        with self.assertRaises(sbc.Vulnerable) as cm:
            c.install_packages("a", ["pip==23.0.1"], progress=events.append)
        self.assertEqual(events, [{"vertexes": [{"name": "resolve"}]}])
        self.assertEqual(cm.exception.document["vulnerabilities"], [{"id": "PYSEC-1"}])
        self.assertEqual(cm.exception.exit_code, 3)

    def test_list(self):
        self.assertEqual(sbc.Client(self.sock).list(), [{"skill_id": "a", "version": "1"}])
        self.assertEqual(sbc.Client(self.sock).list(unpacked=True)[0]["unpacked_size"], 4096)

    def test_inspect(self):
        c = sbc.Client(self.sock)
        self.assertEqual(c.inspect("a", version=2)["name"], "docker.io/library/atom-skill:a-v2")
        self.assertEqual(self.srv.seen[-1][2], {"skill_id": "a", "version": "2"})
        self.assertEqual(c.inspect(ref="localhost:5000/x:1")["name"], "localhost:5000/x:1")
        with self.assertRaises(sbc.NotFound):
            c.inspect("nope")
        with self.assertRaises(ValueError):
            c.inspect("a", ref="x")

    def test_run_with_files(self):
        c = sbc.Client(self.sock)
        r = c.run("a", "pass", files={"a.csv": b"x,y\n", "t.txt": "h\u00e9"})
        self.assertEqual(self.srv.seen[-1][2]["files"], {"a.csv": base64.b64encode(b"x,y\n").decode(), "t.txt": base64.b64encode("h\u00e9".encode()).decode()})
        self.assertEqual([(f["name"], f["content"]) for f in r.files], [("out/a.csv", b"x,y\n"), ("out/t.txt", "h\u00e9".encode()), ("big", None)])
        self.assertEqual(r.files[0]["sha256"], hashlib.sha256(b"x,y\n").hexdigest())
        self.assertTrue(r.files[2]["omitted"])
        self.assertEqual(r.files_omitted, 2)
        with self.assertRaises(sbc.Failed) as cm:
            c.run("corrupt", "pass", files={"a": b"1"})
        self.assertIn("does not match its size and sha256", str(cm.exception))
        with self.assertRaises(TypeError):
            c.run("a", "pass", files={"a": 1})

    def test_session(self):
        c = sbc.Client(self.sock)
        with c.session("a", version=2, memory="128m", idle_timeout=30, cpus=0.5) as s:
            self.assertEqual(self.srv.seen[-1][1:3], ("/v1/sessions", {"skill_id": "a", "version": "2", "memory": "128m", "idle_timeout": "30s", "cpus": "0.5"}))
            self.assertEqual(s.id, "s1")
            r = s.run("x = 1", files={"a": b"1"})
            self.assertEqual(self.srv.seen[-1][2], {"code": "x = 1", "inputs": {}, "files": {"a": "MQ=="}})
            self.assertIsNone(r.session_ended)
            r = s.run("import time; time.sleep(5)", timeout=1)
            self.assertEqual(r.session_ended, "timeout")
            self.assertEqual(s.ended, "timeout")
            with self.assertRaises(sbc.SessionEnded) as cm:
                s.run("result = x")
            self.assertEqual(cm.exception.reason, "timeout")
            self.assertEqual(str(cm.exception), "session ended: timeout")
            self.assertIsInstance(cm.exception, sbc.NotFound)
        # The with-block's end asked for the end of a session that had ended.
        self.assertEqual(self.srv.seen[-1][:2], ("DELETE", "/v1/sessions/s1"))

    def test_session_ends_with_the_block(self):
        with sbc.Client(self.sock).session("a") as s:
            s.run("pass")
        self.assertEqual(self.srv.seen[-1][:2], ("DELETE", "/v1/sessions/s1"))
        self.assertEqual(s.ended, "closed")
        with self.assertRaises(sbc.SessionEnded) as cm:
            s.run("pass")
        self.assertEqual(cm.exception.reason, "closed")

    def test_typed(self):
        # PEP 561: the package says it carries its types.
        self.assertTrue(os.path.exists(os.path.join(os.path.dirname(sbc.__file__), "py.typed")))

    def test_unreachable_server_is_temporary(self):
        with self.assertRaises(sbc.Temporary):
            sbc.Client(os.path.join(self.dir.name, "none.sock")).list()

    def test_tcp_with_token(self):
        srv = _TCPServer(("127.0.0.1", 0), _Handler)
        srv.seen = []
        srv.ended = ""
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            c = sbc.Client("http://127.0.0.1:%d" % srv.server_address[1], token="secret-token\n")
            c.list()
            self.assertEqual(srv.seen[-1][3], "Bearer secret-token")
        finally:
            srv.shutdown()
            srv.server_close()

    def test_bad_arguments(self):
        with self.assertRaises(ValueError):
            sbc.Client("ftp://x")
        with self.assertRaises(TypeError):
            sbc.Client(self.sock).run("a", "pass", timeout=[1])


if __name__ == "__main__":
    unittest.main()
