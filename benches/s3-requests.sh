#!/usr/bin/env bash
# Count the S3 requests and bytes of backup-to-s3 and of restic, side by side, against the same
# local S3 server (moto in server mode, loopback only).
#
#   benches/s3-requests.sh            # installs restic and moto if missing, builds, runs, reports
#
# Every request of both tools goes through a small counting proxy (embedded below) in front of
# moto; the proxy logs method, path, status and body bytes of each request. moto's own access
# log is counted too, as a cross-check of the totals. Each operation gets its own window of
# both logs. Results: $WORK/results.md (Markdown tables), raw logs in $WORK.
#
# Settings (environment):
#   WORK=/var/tmp/s3-requests-bench  scratch folder (deleted and recreated); keep it below
#                                quiet folders: a no-op backup stores the metadata of the
#                                backed-up folder's ancestors, so churn there adds a tree
#   SRC=/usr/share               tree to back up (copied to $WORK/data first)
#   SRC_EXCLUDE="locale"         top-level folders of SRC not copied (space separated)
#   BIN=                         backup-to-s3 binary (default: cargo build --release here)
#   MOTO_PORT=5055 PROXY_PORT=5056
#   OP_TIMEOUT=3600              bound in seconds for each single operation
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/var/tmp/s3-requests-bench}
SRC=${SRC:-/usr/share}
SRC_EXCLUDE=${SRC_EXCLUDE:-locale}
MOTO_PORT=${MOTO_PORT:-5055}
PROXY_PORT=${PROXY_PORT:-5056}
OP_TIMEOUT=${OP_TIMEOUT:-3600}
EP=http://127.0.0.1:$PROXY_PORT
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo

# --- tools -----------------------------------------------------------------------------------
if ! command -v restic >/dev/null; then
    $SUDO apt-get update && $SUDO apt-get install -y restic
fi
MOTO_SERVER=$(command -v moto_server || true)
if [ -z "$MOTO_SERVER" ]; then
    # A private virtualenv (Debian's system Python refuses global pip installs).
    VENV=${MOTO_VENV:-$HOME/.cache/s3-requests-bench/venv}
    python3 -m venv "$VENV" 2>/dev/null || {
        $SUDO apt-get update && $SUDO apt-get install -y python3-venv && python3 -m venv "$VENV"; }
    "$VENV/bin/pip" install -q 'moto[server]==5.*'
    MOTO_SERVER=$VENV/bin/moto_server
fi
if [ -z "${BIN:-}" ]; then
    (cd "$HERE" && cargo build --release --bin backup-to-s3)
    BIN=${CARGO_TARGET_DIR:-$HERE/target}/release/backup-to-s3
fi

# --- scratch, servers ------------------------------------------------------------------------
rm -rf "$WORK"
mkdir -p "$WORK/out" "$WORK/tmp" "$WORK/cache" "$WORK/restore"
# Temporary files of both tools (restic writes its packs there) stay out of /tmp, whose
# metadata would otherwise change between backups.
export TMPDIR="$WORK/tmp"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

cat > "$WORK/proxy.py" <<'PY'
# Counting reverse proxy: forwards every request to the S3 server unchanged and appends
# "method<TAB>path?query<TAB>status<TAB>request body bytes<TAB>response body bytes" to a log.
import http.client, http.server, sys, threading
listen, upstream, log_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
log = open(log_path, "a", buffering=1)
lock = threading.Lock()
HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
       "upgrade", "expect", "content-length"}

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive; answers "Expect: 100-continue" itself
    up = None

    def log_message(self, *args):
        pass

    def body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                n = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(n))
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def forward(self):
        body = self.body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        headers["Content-Length"] = str(len(body))
        for attempt in (0, 1):
            try:
                if self.up is None:
                    self.up = http.client.HTTPConnection("127.0.0.1", upstream, timeout=900)
                self.up.request(self.command, self.path, body=body, headers=headers)
                resp = self.up.getresponse()
                data = resp.read()
                break
            except (http.client.HTTPException, OSError):
                self.up = None
                if attempt:
                    raise
        with lock:
            log.write(f"{self.command}\t{self.path}\t{resp.status}\t{len(body)}\t{len(data)}\n")
        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        if self.command == "HEAD":
            cl = resp.getheader("Content-Length")
            if cl is not None:
                self.send_header("Content-Length", cl)
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = forward

http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer(("127.0.0.1", listen), Handler).serve_forever()
PY

"$MOTO_SERVER" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
PIDS+=($!)
: > "$WORK/requests.tsv"
python3 "$WORK/proxy.py" "$PROXY_PORT" "$MOTO_PORT" "$WORK/requests.tsv" 2>"$WORK/proxy.err" &
PIDS+=($!)
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 150); do
    port_open "$MOTO_PORT" && port_open "$PROXY_PORT" && break
    sleep 0.2
done
port_open "$MOTO_PORT" && port_open "$PROXY_PORT" || { echo "servers did not start" >&2; exit 1; }

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_PROFILE AWS_SESSION_TOKEN

# Wrappers (scripts, so that `timeout` can run them).
mkdir -p "$WORK/bin"
cat >"$WORK/bin/ours" <<SH
#!/bin/sh
BACKUP_TO_S3_PASSWORD=x exec "$BIN" --cache-dir "$WORK/cache/ours" \\
    -r s3://bench-ours/repo --s3-endpoint "$EP" "\$@"
SH
cat >"$WORK/bin/theirs" <<SH
#!/bin/sh
RESTIC_PASSWORD=x exec restic --cache-dir "$WORK/cache/restic" -r "s3:$EP/bench-restic" "\$@"
SH
chmod +x "$WORK/bin/ours" "$WORK/bin/theirs"
export PATH="$WORK/bin:$PATH"

moto_requests() { grep -cE '"(GET|PUT|POST|HEAD|DELETE) /' "$WORK/moto.log" || true; }

# run OP TOOL COMMAND...: one window of both logs per operation.
run() {
    local op=$1 tool=$2; shift 2
    sleep 1
    local p0 m0 p1 m1 t0 t1
    p0=$(wc -l <"$WORK/requests.tsv"); m0=$(moto_requests); t0=$(date +%s.%N)
    echo ">> $op ($tool)" >&2
    if ! timeout "$OP_TIMEOUT" "$@" >"$WORK/out/$op.$tool.out" 2>"$WORK/out/$op.$tool.err"; then
        echo "FAILED: $op ($tool)" >&2; tail -20 "$WORK/out/$op.$tool.err" >&2; exit 1
    fi
    t1=$(date +%s.%N)
    sleep 1
    p1=$(wc -l <"$WORK/requests.tsv"); m1=$(moto_requests)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%.1f\n' "$op" "$tool" "$p0" "$p1" "$m0" "$m1" \
        "$(awk "BEGIN { print $t1 - $t0 }")" >>"$WORK/ops.tsv"
}

# --- data ------------------------------------------------------------------------------------
mkdir -p "$WORK/data"
excl=(); for e in $SRC_EXCLUDE; do excl+=(--exclude "/$e"); done
if command -v rsync >/dev/null; then
    rsync -a "${excl[@]}" "$SRC/" "$WORK/data/"
else
    (cd "$SRC" && tar cf - $(for e in $SRC_EXCLUDE; do echo "--exclude=./$e"; done) .) \
        | tar xf - -C "$WORK/data"
fi
DATA=$WORK/data
echo "data: $(find "$DATA" -type f | wc -l) files, $(du -sm --apparent-size "$DATA" | cut -f1) MiB" \
    | tee "$WORK/data.txt" >&2

modify() {
    # Append a line to every 100th file (~1 %), add 20 new files of 64 KiB random data.
    find "$DATA" -type f -writable | LC_ALL=C sort | awk 'NR % 100 == 0' >"$WORK/modified.txt"
    while IFS= read -r f; do echo "modified by s3-requests.sh" >>"$f"; done <"$WORK/modified.txt"
    mkdir -p "$DATA/zz-new"
    for i in $(seq -w 1 20); do head -c 65536 /dev/urandom >"$DATA/zz-new/new-$i.bin"; done
    echo "modified: $(wc -l <"$WORK/modified.txt") files appended, 20 files added" \
        | tee -a "$WORK/data.txt" >&2
}

# --- operations ------------------------------------------------------------------------------
run init ours ours init
run init restic theirs init
run backup-1 ours ours --json backup "$DATA"
run backup-1 restic theirs backup --json "$DATA"
modify
run backup-2-modified ours ours --json backup "$DATA"
run backup-2-modified restic theirs backup --json "$DATA"
run backup-3-noop ours ours --json backup "$DATA"
run backup-3-noop restic theirs backup --json "$DATA"
run snapshots ours ours snapshots
run snapshots restic theirs snapshots
run ls-latest ours ours ls latest
run ls-latest restic theirs ls latest
run restore ours ours --json restore latest --target "$WORK/restore/ours"
run restore restic theirs restore latest --target "$WORK/restore/restic"
run check ours ours --json check
run check restic theirs check
run check-read-data ours ours --json check --read-data
run check-read-data restic theirs check --read-data

# A no-op backup from a machine without the local cache (new machine, cache deleted).
rm -rf "$WORK/cache/ours" "$WORK/cache/restic"
run backup-4-noop-empty-cache ours ours --json backup "$DATA"
run backup-4-noop-empty-cache restic theirs backup --json "$DATA"

for t in ours restic; do
    echo "restored files ($t): $(find "$WORK/restore/$t" -type f | wc -l)" | tee -a "$WORK/data.txt" >&2
done

# --- report ----------------------------------------------------------------------------------
python3 - "$WORK" <<'PY' | tee "$WORK/results.md"
import json, re, sys
from urllib.parse import urlsplit, parse_qs
work = sys.argv[1]
reqs = [l.rstrip("\n").split("\t") for l in open(f"{work}/requests.tsv")]
ops = [l.rstrip("\n").split("\t") for l in open(f"{work}/ops.tsv")]
COLS = ["PUT", "POST", "GET", "HEAD", "LIST", "DELETE"]

def classify(method, target):
    u = urlsplit(target)
    q = parse_qs(u.query, keep_blank_values=True)
    path = u.path.strip("/")
    if method == "GET" and "/" not in path and ("list-type" in q or "prefix" in q or not q):
        return "LIST"   # ListObjects(V2) on a bucket
    return method

def count(lo, hi):
    c = dict.fromkeys(COLS, 0); up = down = 0; errors = 0
    for m, target, status, b_up, b_down in reqs[lo:hi]:
        c[classify(m, target)] += 1
        up += int(b_up); down += int(b_down)
        errors += int(status) >= 400
    return c, up, down, errors

def mib(n):
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB"

def usd(c):
    # Request charges of 1000 runs at S3 Standard prices (us-east-1): PUT, POST, LIST
    # $0.005 per 1000; GET, HEAD $0.0004 per 1000; DELETE free. Storage and transfer excluded.
    return (c["PUT"] + c["POST"] + c["LIST"]) * 0.005 + (c["GET"] + c["HEAD"]) * 0.0004

def ratio(a, b):
    return f"{a / b:.2f}" if b else ("–" if a == 0 else "∞")

print(open(f"{work}/data.txt").read().strip().replace("\n", "; "))
print()
rows = {}
for op, tool, p0, p1, m0, m1, secs in ops:
    c, up, down, err = count(int(p0), int(p1))
    rows.setdefault(op, {})[tool] = (c, up, down, err, int(m1) - int(m0), secs)
for op, by_tool in rows.items():
    print(f"#### {op}\n")
    print("| | " + " | ".join(COLS) + " | total | bytes up | bytes down | USD / 1000 runs | 4xx/5xx | moto log | time |")
    print("|---" * (len(COLS) + 8) + "|")
    for tool in ("ours", "restic"):
        c, up, down, err, moto, secs = by_tool[tool]
        total = sum(c.values())
        print(f"| {tool} | " + " | ".join(str(c[k]) for k in COLS)
              + f" | **{total}** | {mib(up)} | {mib(down)} | {usd(c):.4f} | {err} | {moto} | {secs} s |")
    a, b = by_tool["ours"], by_tool["restic"]
    print("| ours / restic | " + " | ".join(ratio(a[0][k], b[0][k]) for k in COLS)
          + f" | **{ratio(sum(a[0].values()), sum(b[0].values()))}** | {ratio(a[1], b[1])}"
          + f" | {ratio(a[2], b[2])} | {ratio(usd(a[0]), usd(b[0]))} | | | |")
    print()

# What our tool reported about itself (--json summaries), for comparison with the proxy.
print("#### Self-reported by backup-to-s3 (`--json` summary `requests`)\n")
for op in rows:
    try:
        lines = open(f"{work}/out/{op}.ours.out").read().strip().splitlines()
        j = json.loads(lines[-1])
    except Exception:
        continue
    if "requests" in j:
        print(f"- {op}: {json.dumps(j['requests'])}, bytes_up {j.get('bytes_up')}, bytes_down {j.get('bytes_down')}")
PY
