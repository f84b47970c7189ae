#!/usr/bin/env bash
# The Debian package: build it, install it, run what it installed, upgrade
# it, purge it.
#
# Installs a pinned cargo-deb from crates.io (once), writes the man pages
# (`cargo run -p xtask -- man`), builds the .deb (a release build) and a
# second one of the same binary with a higher Debian revision, and then, as
# root on this machine:
#   - `dpkg -i`: checks the rim system user, /usr/bin/rim, /etc/rim/rim.toml
#     as a conffile readable by rim only, /var/lib/rim and /var/backups/rim
#     owned by rim, the systemd units (rim.service, rim-backup.service and
#     .timer) and the man pages;
#   - runs `rim serve` as the rim user with the installed config (there is no
#     systemd here: setpriv does what the unit's User= does), checks /healthz
#     and a message round trip between two people over WebSocket;
#   - `dpkg -i` of the higher revision (an upgrade) with a changed
#     conffile: the change and the database are kept, the message is still
#     there, and `rim check` passes;
#   - `dpkg --purge`: the binary, the config, the units and the database are
#     gone.
# Refuses to run where a rim package is already installed, unless it is
# this script's own leftover (RIM_DEB_REPLACE=1).
#
# Settings (environment):
#   RIM_DEB_VENV     a venv with websockets (default target/litestream-venv,
#                    made by tests/litestream.sh; made here if missing)
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
WEBSOCKETS_VERSION=17.4
VENV=${RIM_DEB_VENV:-target/litestream-venv}
PY="$VENV/bin/python"

if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
    echo "installing cargo-deb $CARGO_DEB_VERSION"
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
fi
if ! command -v adduser >/dev/null; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y adduser
fi
if ! "$PY" -c "import websockets" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "websockets==$WEBSOCKETS_VERSION"
fi

if dpkg -s rim >/dev/null 2>&1; then
    if [ "${RIM_DEB_REPLACE:-}" = 1 ]; then
        dpkg --purge rim
    else
        echo "a rim package is installed here already; RIM_DEB_REPLACE=1 purges it first" >&2
        exit 1
    fi
fi

work=$(mktemp -d)
chmod 755 "$work"
server=""
cleanup() {
    if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
        kill -KILL "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    if dpkg -s rim >/dev/null 2>&1; then
        dpkg --purge rim >/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
cargo run --locked --quiet -p xtask -- man target/man
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
deb=$work/rim_${version}-1.deb
upgrade=$work/rim_${version}-2.deb
cargo deb --locked --output "$deb"
cargo deb --locked --no-build --deb-revision 2 --output "$upgrade"
echo "built $deb ($(stat -c %s "$deb") bytes) and $upgrade"
fail() {
    [ -f "$work/server.log" ] && tail -n 30 "$work/server.log" >&2
    echo "deb: $*" >&2
    exit 1
}
check() {
    local what=$1
    shift
    "$@" || fail "$what"
    echo "ok: $what"
}

start() {
    # setpriv runs rim itself as rim (runuser would stay in between, and
    # answer SIGTERM on its own).
    setpriv --reuid=rim --regid=rim --init-groups -- /usr/bin/rim serve --config /etc/rim/rim.toml --db /var/lib/rim/rim.db \
        --listen 127.0.0.1:0 > "$work/server.log" 2>&1 &
    server=$!
    addr=""
    for _ in $(seq 100); do
        addr=$(sed -n 's/.* listening addr=\([0-9.:]*\) .*/\1/p' "$work/server.log" | head -n1)
        [ -n "$addr" ] && break
        kill -0 "$server" 2>/dev/null || fail "rim serve did not start"
        sleep 0.1
    done
    [ -n "$addr" ] || fail "rim serve did not report its address"
}
stop() {
    kill -TERM "$server"
    wait "$server" || fail "rim serve did not stop cleanly"
    server=""
}

dpkg -i "$deb"
check "a rim system user whose home is /var/lib/rim" \
    test "$(getent passwd rim | cut -d: -f6)" = /var/lib/rim
check "/usr/bin/rim runs" sh -c '/usr/bin/rim --version | grep -q "^rim "'
check "/etc/rim/rim.toml is a conffile" sh -c "dpkg-query -W -f='\${Conffiles}' rim | grep -q ' /etc/rim/rim.toml '"
check "/etc/rim/rim.toml is root's, readable by rim only" \
    test "$(stat -c '%U:%G %a' /etc/rim/rim.toml)" = "root:rim 640"
check "/var/lib/rim and /var/backups/rim belong to rim" \
    test "$(stat -c '%U %a' /var/lib/rim /var/backups/rim | sort -u)" = "rim 700"
for unit in rim.service rim-backup.service rim-backup.timer; do
    check "the $unit unit" sh -c "dpkg -L rim | grep -q '/systemd/system/$unit\$'"
done
# The README's unit (its "Running as a systemd service"), with the package's
# path of the binary.
sed -n '/^`\/etc\/systemd\/system\/rim.service`:$/,/^```$/p' README.md | sed '1,3d;$d' \
    | sed 's|/usr/local/bin/rim|/usr/bin/rim|' > "$work/readme.service"
check "rim.service is the README's unit" \
    diff "$work/readme.service" "$(dpkg -L rim | grep '/systemd/system/rim.service$')"
check "the rim-backup timer is enabled" test -L /etc/systemd/system/timers.target.wants/rim-backup.timer
check "man pages for rim and its commands" \
    sh -c 'for p in rim rim-serve rim-user-add rim-backup rim-check; do test -f /usr/share/man/man1/$p.1.gz || exit 1; done'

start
check "/healthz answers ok" sh -c "curl -sf http://$addr/healthz | grep -q '\"status\":\"ok\"'"
"$PY" - "http://$addr" send > "$work/tokens" <<'EOF' || fail "no message round trip"
import asyncio, json, sys, urllib.request
import websockets

base, step = sys.argv[1], sys.argv[2]

def call(path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, headers=headers,
                                 method="POST" if data else "GET")
    with urllib.request.urlopen(req, timeout=30) as resp:
        answer = json.load(resp)
    assert answer["ok"], (path, answer)
    return answer["data"]

async def login(token):
    ws = await websockets.connect(base.replace("http://", "ws://") + "/ws", open_timeout=10)
    await ws.send(json.dumps({"event": "Login", "body": {"content": token, "clientMsgId": "login"}}))
    answer = await next_frame(ws, lambda f: f.get("clientMsgId") == "login")
    assert answer.get("code") == 200, answer
    return ws

async def next_frame(ws, wanted):
    # Pushes of other kinds (presence, say) may come first: skip a bounded few.
    for _ in range(20):
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if wanted(frame):
            return frame
    raise AssertionError("the expected frame did not come")

async def main():
    alice = call("/api/user/create", {"account": "alice", "password": "correct horse"})
    bob = call("/api/user/create", {"account": "bob", "password": "battery staple"})
    a = call("/api/user/login", {"account": "alice", "password": "correct horse"})
    b = call("/api/user/login", {"account": "bob", "password": "battery staple"})
    # Only friends can be put in a group.
    call("/api/friend/add", {"fid": bob}, a)
    call("/api/friend/status/modify", {"fid": alice, "status": 1}, b)
    gid = call("/api/group/create", {"group": {"name": "deb"}, "users": [{"uid": bob, "role": 1}]}, a)
    ws_b = await login(b)
    ws_a = await login(a)
    await ws_a.send(json.dumps({"event": "Msg", "body": {
        "kind": "Text", "gid": gid, "content": "hello from the package", "clientMsgId": "m1"}}))
    ack = await next_frame(ws_a, lambda f: f.get("clientMsgId") == "m1")
    assert ack.get("kind") == "Ack" and ack.get("code") == 200, ack
    push = await next_frame(ws_b, lambda f: f.get("event") == "Msg")
    assert push["body"]["content"] == "hello from the package", push
    await ws_a.close()
    await ws_b.close()
    print(b, gid)

asyncio.run(main())
EOF
echo "ok: alice's message reached bob over WebSocket"
stop

# An upgrade, with a changed conffile: dpkg keeps the change (no prompt: the
# packaged rim.toml did not change), the service's database is kept, and the
# new binary opens it.
echo "# changed by the administrator" >> /etc/rim/rim.toml
dpkg -i "$upgrade"
check "the upgrade is installed" test "$(dpkg-query -W -f='${Version}' rim)" = "${version}-2"
check "the changed config was kept" grep -q "changed by the administrator" /etc/rim/rim.toml
check "rim check passes on the upgraded database" \
    setpriv --reuid=rim --regid=rim --init-groups -- /usr/bin/rim check --db /var/lib/rim/rim.db --config /etc/rim/rim.toml
start
read -r token gid < "$work/tokens"
check "the message is still there after the upgrade" sh -c \
    "curl -sf -H 'Authorization: Bearer $token' http://$addr/api/message/history -d '{\"gid\":$gid,\"page\":1,\"size\":10}' | grep -q 'hello from the package'"
stop

dpkg --purge rim
check "purged: no binary, config, units or database left" sh -c \
    '! test -e /usr/bin/rim && ! test -e /etc/rim && ! test -e /var/lib/rim && ! ls /usr/lib/systemd/system/rim* /lib/systemd/system/rim* 2>/dev/null | grep -q .'
echo "deb: 1 passed, 0 failed"
