#!/usr/bin/env python3
"""Slow request bodies against a fresh `rim serve` on loopback.

Opens SOCKETS connections from 127.0.0.1, each sending the headers of a
POST with Content-Length 65536, then 65,000 bytes of the body, then
nothing. Meanwhile a client from 127.0.0.2 asks GET /healthz every 0.5 s
on a new connection. Reports when the server had closed every slow socket
(and how: 429 at once, 408 at the body deadline, or closed without an
answer), whether /healthz was answered 200 throughout, and the server's
peak RSS.

    python3 bench/scripts/slowbody.py target/release/rim [SOCKETS]

Everything is bounded: at most WAIT_SECS for the sockets to close.
"""

import os
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time

SOCKETS = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
WAIT_SECS = 60
HEAD = (
    b"POST /api/user/login HTTP/1.1\r\nhost: rim\r\n"
    b"content-type: application/json\r\ncontent-length: 65536\r\n\r\n"
)
BODY = b" " * 65000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def healthz(port):
    """(status, seconds) of one GET /healthz from 127.0.0.2, or (0, s)."""
    t = time.monotonic()
    try:
        with socket.create_connection(
            ("127.0.0.1", port), timeout=5, source_address=("127.0.0.2", 0)
        ) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nhost: rim\r\nconnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    except OSError:
        status = 0
    return status, time.monotonic() - t


def main():
    rim = sys.argv[1]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, SOCKETS + 1000), hard))
    work = tempfile.mkdtemp(prefix="rim-slowbody-")
    port = free_port()
    server = subprocess.Popen(
        [rim, "serve", "--db", os.path.join(work, "rim.db"),
         "--listen", f"127.0.0.1:{port}", "--config", os.devnull],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=lambda: resource.setrlimit(
            resource.RLIMIT_NOFILE, (min(hard, SOCKETS + 1000), hard)),
    )
    try:
        for _ in range(100):
            if healthz(port)[0] == 200:
                break
            time.sleep(0.1)
        start_rss = rss_kib(server.pid)
        peak = [start_rss]
        checks = []
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                checks.append(healthz(port))
                peak[0] = max(peak[0], rss_kib(server.pid))
                stop.wait(0.5)

        watcher = threading.Thread(target=watch)
        watcher.start()

        sel = selectors.DefaultSelector()
        t0 = time.monotonic()
        opened = 0
        for _ in range(SOCKETS):
            s = socket.socket()
            try:
                s.connect(("127.0.0.1", port))
                s.sendall(HEAD)
                s.sendall(BODY)
            except OSError:
                pass
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, {"answer": b""})
            opened += 1
        sent = time.monotonic() - t0
        how = {}
        last_close = 0.0
        open_left = opened
        while open_left and time.monotonic() - t0 < WAIT_SECS:
            for key, _ in sel.select(timeout=1.0):
                s = key.fileobj
                try:
                    chunk = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if chunk:
                    key.data["answer"] += chunk
                    continue
                answer = key.data["answer"]
                kind = answer[9:12].decode() if answer.startswith(b"HTTP/1.1 ") else "none"
                how[kind] = how.get(kind, 0) + 1
                sel.unregister(s)
                s.close()
                open_left -= 1
                last_close = time.monotonic() - t0
            peak[0] = max(peak[0], rss_kib(server.pid))
        stop.set()
        watcher.join()
        ok = sum(1 for status, _ in checks if status == 200)
        slowest = max((t for _, t in checks), default=0.0)
        print(f"slow sockets: {opened} opened in {sent:.1f} s; "
              f"{opened - open_left} closed by the server, the last after {last_close:.1f} s; "
              f"{open_left} still open after {WAIT_SECS} s")
        print("answers: " + ", ".join(f"{k}: {v}" for k, v in sorted(how.items())))
        print(f"healthz from 127.0.0.2: {ok} of {len(checks)} answered 200, slowest {slowest * 1000:.0f} ms")
        print(f"server RSS: {start_rss / 1024:.1f} MiB at start, peak {peak[0] / 1024:.1f} MiB")
        good = open_left == 0 and last_close <= 35 and ok == len(checks) and peak[0] < 64e6 / 1024
        print("target (all closed within 35 s, healthz served throughout, RSS < 64 MB):",
              "met" if good else "NOT met")
        return 0 if good else 1
    finally:
        server.terminate()
        server.wait(timeout=20)
        for name in os.listdir(work):
            os.remove(os.path.join(work, name))
        os.rmdir(work)


if __name__ == "__main__":
    sys.exit(main())
