"""indexbridge: give a command inside a no-network build step its package index.

Usage: python3 indexbridge.py SOCKET PORT -- CMD [ARGS...]

Listens on 127.0.0.1:PORT (0 picks a free port) and bridges every TCP
connection to the unix socket SOCKET, which BuildKit forwards to skillbuild's
filtering HTTP proxy. Runs CMD with every "{proxy}" in ARGS replaced by
http://127.0.0.1:<port> and with the proxy environment variables set, waits
for it, and exits with its exit code (128+N if it died of signal N).

Never writes to stdout: CMD owns it (pip's --report may go there). Stdlib
only, Python >= 3.7.
"""

import os
import signal
import socket
import subprocess
import sys
import threading

PLACEHOLDER = "{proxy}"
PROXY_ENV = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")
NO_PROXY_ENV = ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY")
BUF = 64 * 1024


def err(msg):
    sys.stderr.write("indexbridge: %s\n" % msg)
    sys.stderr.flush()


def pump(src, dst):
    """Copy src to dst until EOF, then half-close dst so the peer sees EOF."""
    try:
        while True:
            data = src.recv(BUF)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def bridge(tcp, path, state):
    up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        up.connect(path)
    except OSError as e:
        if not state.get("warned"):
            state["warned"] = True
            err("cannot reach %s: %s" % (path, e))
        up.close()
        tcp.close()
        return
    t = threading.Thread(target=pump, args=(up, tcp), daemon=True)
    t.start()
    pump(tcp, up)
    t.join()
    up.close()
    tcp.close()


def serve(lsock, path):
    state = {}
    while True:
        try:
            conn, _ = lsock.accept()
        except OSError:
            return  # listener closed: the command has exited
        threading.Thread(target=bridge, args=(conn, path, state), daemon=True).start()


def main(argv):
    if len(argv) < 5 or argv[3] != "--":
        err("usage: indexbridge.py SOCKET PORT -- CMD [ARGS...]")
        return 125
    path, port = argv[1], argv[2]
    try:
        port = int(port)
    except ValueError:
        err("bad port %r" % port)
        return 125
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind(("127.0.0.1", port))
        lsock.listen(64)
    except OSError as e:
        err("cannot listen on 127.0.0.1:%d: %s" % (port, e))
        return 125
    proxy = "http://127.0.0.1:%d" % lsock.getsockname()[1]

    threading.Thread(target=serve, args=(lsock, path), daemon=True).start()

    cmd = [a.replace(PLACEHOLDER, proxy) for a in argv[4:]]
    env = dict(os.environ)
    for k in NO_PROXY_ENV:
        env.pop(k, None)
    for k in PROXY_ENV:
        env[k] = proxy
    try:
        child = subprocess.Popen(cmd, env=env)
    except OSError as e:
        err("cannot start %s: %s" % (cmd[0], e))
        return 127

    def forward(signum, _frame):
        try:
            child.send_signal(signum)
        except OSError:
            pass

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, forward)

    while True:
        try:
            code = child.wait()
            break
        except KeyboardInterrupt:
            continue
    try:
        lsock.close()
    except OSError:
        pass
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    rc = main(sys.argv)
    sys.stderr.flush()
    # Bridge threads may be blocked in recv: leave without joining them.
    os._exit(rc)
