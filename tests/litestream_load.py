"""Message load against a running rim, ended by kill -9 of the server.

Used by tests/litestream.sh. Registers SENDERS people in pairs, gives each
pair a group, logs everyone in over WebSocket and has each send text
messages with up to WINDOW unacknowledged at once. Every acknowledged
message (its serverMsgId and content) is written to ACKED as
`id<TAB>content` lines. Once KILL_AT messages are acknowledged (or after
LIMIT seconds) the server gets SIGKILL:

- by default between two commits: the senders stop sending, and the kill
  comes the moment the last answer is in, with the server still busy
  publishing and the connections open;
- with LITESTREAM_KILL=midstream while messages are in flight, which may
  land in the middle of a commit (see tests/litestream.sh for what that
  asks of Litestream afterwards).

Bounded in count (each sender sends at most PER_SENDER messages) and in
time (LIMIT seconds for the load, ten more for the connections to close).

usage: litestream_load.py BASE_URL SERVER_PID ACKED
"""

import asyncio
import json
import os
import signal
import sys
import time
import urllib.request

import websockets

SENDERS = 8
WINDOW = 32
KILL_AT = 20_000
PER_SENDER = 10_000
LIMIT = 60.0


def post(base, path, body, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        answer = json.load(resp)
    if not answer["ok"]:
        raise SystemExit(f"{path}: {answer}")
    return answer["data"]


def setup(base):
    """Returns (token, gid) for each sender."""
    people = []
    for i in range(SENDERS):
        account = f"sender{i}"
        uid = post(base, "/api/user/create", {"account": account, "password": "litestream-pw"})
        token = post(base, "/api/user/login", {"account": account, "password": "litestream-pw"})
        people.append((uid, token))
    senders = []
    for i in range(0, SENDERS, 2):
        (a_uid, a), (b_uid, b) = people[i], people[i + 1]
        # Only friends can be put in a group.
        post(base, "/api/friend/add", {"fid": b_uid}, token=a)
        post(base, "/api/friend/status/modify", {"fid": a_uid, "status": 1}, token=b)
        gid = post(
            base,
            "/api/group/create",
            {"group": {"name": f"pair {i // 2}"}, "users": [{"uid": b_uid, "role": 1}]},
            token=a,
        )
        senders += [(a, gid), (b, gid)]
    return senders


class Run:
    def __init__(self, pid):
        self.pid = pid
        self.acked = {}  # serverMsgId -> content
        self.killed = False
        self.stopping = False
        self.in_flight = 0
        self.midstream = os.environ.get("LITESTREAM_KILL") == "midstream"
        self.started = time.monotonic()

    def maybe_kill(self):
        late = time.monotonic() - self.started > LIMIT
        if len(self.acked) >= KILL_AT or late:
            self.stopping = True
        if self.killed or not self.stopping:
            return
        if self.midstream or self.in_flight == 0:
            self.killed = True
            os.kill(self.pid, signal.SIGKILL)


async def sender(run, ws_url, n, token, gid):
    try:
        async with websockets.connect(ws_url, max_size=2**20, open_timeout=10) as ws:
            await ws.send(json.dumps({"event": "Login", "body": {"content": token, "clientMsgId": "login"}}))
            while True:
                answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if answer.get("clientMsgId") == "login":
                    if answer.get("code") != 200:
                        raise SystemExit(f"login of sender {n} refused: {answer}")
                    break
            pending = {}  # clientMsgId -> content
            room = asyncio.Semaphore(WINDOW)

            async def send_all():
                for k in range(PER_SENDER):
                    await room.acquire()
                    if run.killed or (run.stopping and not run.midstream):
                        return
                    cid = f"s{n}-{k}"
                    content = f"litestream {n} {k}"
                    pending[cid] = content
                    run.in_flight += 1
                    await ws.send(json.dumps({
                        "event": "Msg",
                        "body": {"kind": "Text", "gid": gid, "content": content, "clientMsgId": cid},
                    }))

            writer = asyncio.create_task(send_all())
            try:
                async for frame in ws:
                    answer = json.loads(frame)
                    cid = answer.get("clientMsgId")
                    if "event" in answer or cid not in pending:
                        continue  # a push of the partner's message
                    content = pending.pop(cid)
                    run.in_flight -= 1
                    if answer.get("kind") != "Ack" or answer.get("code") != 200:
                        raise SystemExit(f"message {cid} refused: {answer}")
                    run.acked[answer["serverMsgId"]] = content
                    run.maybe_kill()
                    room.release()
                    if writer.done() and not pending and not run.stopping:
                        return
            finally:
                writer.cancel()
    except (websockets.ConnectionClosed, OSError):
        if not run.killed:
            raise


async def main():
    base, pid, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    senders = setup(base)
    run = Run(pid)
    ws_url = base.replace("http://", "ws://") + "/ws"
    await asyncio.wait_for(
        asyncio.gather(*(sender(run, ws_url, n, t, g) for n, (t, g) in enumerate(senders))),
        LIMIT + 10,
    )
    if not run.killed:
        raise SystemExit("every message was sent before the server was killed")
    with open(out, "w") as f:
        for msg_id, content in sorted(run.acked.items()):
            f.write(f"{msg_id}\t{content}\n")
    rate = len(run.acked) / (time.monotonic() - run.started)
    print(f"{len(run.acked)} messages acknowledged ({rate:.0f}/s), then kill -9")


asyncio.run(main())
