#!/usr/bin/env bash
# scale.sh - how backup cost grows with the repository (benches/RESULTS.md, "Scale").
#
# For each N in SIZES: a new local repository (real `init`, default key parameters) holding N
# synthetic blobs in real sealed index objects of 100 000 entries (`cargo bench --bench scale --
# repo`; random ids and fake packs, so `check` would fail on it), then, with the release binary
# under /usr/bin/time:
#   sync    the first command after that (`snapshots`) builds the local index cache from the
#           index objects: a one-time cost per machine (and after a prune, a rebuild)
#   lookup  PackWriter::claim (the backup's per-chunk dedup lookup) against the synced cache,
#           random ids, half hits and half misses, and the durable commit that records a
#           pack of 128 new blobs as pending (bench binary, not timed by /usr/bin/time)
#   backup  a fixed 1 GiB input that is new to the repository (6 × 128 MiB + 4,096 × 64 KiB
#           files of mixed content: random, text, zeros, binary-like), ROUNDS times, each
#           from a fresh copy of the synced repository and cache
#   noop    the same backup again right after (unchanged files)
# Prints a Markdown table and writes the CSV, and the plot through benches/scale_plot.py.
#
# Usage:  benches/scale.sh
# Env:    SIZES   blob counts (default "0 1000000 10000000")
#         ROUNDS  backup rounds per size (default 3)
#         SCALE_WORK  work folder (default /tmp/scale-work; needs ~5 GB at 10 M blobs)
#         SCALE_INPUT the 1 GiB input (default /tmp/scale-input; generated once)
#         PLOT    PNG to write (default benches/scale.png; "" to skip; needs matplotlib)
#         BACKUP_ARGS  extra arguments for both backups (e.g. "--connections 1")
#         KEEP=1  keep the repositories afterwards
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SIZES=${SIZES:-0 1000000 10000000}
ROUNDS=${ROUNDS:-3}
WORK=${SCALE_WORK:-/tmp/scale-work}
INPUT=${SCALE_INPUT:-/tmp/scale-input}
PLOT=${PLOT-$HERE/scale.png}
STAMP=$(date +%Y%m%d-%H%M%S)
CSV=$WORK/scale-$STAMP.csv
export BACKUP_TO_S3_PASSWORD=${BACKUP_TO_S3_PASSWORD:-scale-bench-password}
unset BACKUP_TO_S3_REPOSITORY BACKUP_TO_S3_CACHE_DIR BACKUP_TO_S3_PASSWORD_FILE \
  BACKUP_TO_S3_PASSWORD_COMMAND
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
mkdir -p "$WORK"
say() { echo "== $*" >&2; }

say "building the release binary and the scale bench"
cd "$ROOT"
cargo build --release --no-default-features --bin backup-to-s3 >&2
BIN=$ROOT/target/release/backup-to-s3
SCALE=$(cargo bench --no-default-features --bench scale --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "scale" and m.get("executable"):
        print(m["executable"])')
[ -x "$SCALE" ] || { echo "scale bench not built" >&2; exit 1; }

"$SCALE" input "$INPUT" >&2
# Read the input once so the first measured backup does not pay for a cold page cache.
tar -cf - -C "$INPUT" . | cat >/dev/null

echo "n,round,op,wall_s,user_s,sys_s,rss_kib,load1,hit_us,miss_us,mb,others" >"$CSV"
row() { echo "$*" >>"$CSV"; }

# Busy CPU seconds of the whole machine so far (all cores), from /proc/stat.
busy() { awk -v hz="$(getconf CLK_TCK)" '/^cpu /{print ($2+$3+$4+$7+$8+$9)/hz; exit}' /proc/stat; }

# timed N ROUND OP CMD...: run CMD under /usr/bin/time, append a CSV row. `others` is the CPU
# the rest of the machine used meanwhile, in cores (on 2 cores, 1.0 leaves us one core).
timed() {
  local n=$1 round=$2 op=$3 load b0 b1 e u s m others
  shift 3
  sync # no writeback of the previous step's files competes with this one
  load=$(cut -d' ' -f1 /proc/loadavg)
  b0=$(busy)
  if ! /usr/bin/time -f '%e %U %S %M' -o "$WORK/time.out" "$@" >"$WORK/cmd.log" 2>&1; then
    cat "$WORK/cmd.log" >&2
    exit 1
  fi
  b1=$(busy)
  read -r e u s m <"$WORK/time.out"
  others=$(awk -v b0="$b0" -v b1="$b1" -v u="$u" -v s="$s" -v e="$e" \
    'BEGIN{o=(b1-b0-u-s)/(e>0?e:1); printf "%.2f", (o<0?0:o)}')
  row "$n,$round,$op,$e,$u,$s,$m,$load,,,,$others"
  say "n=$n round $round $op: ${e} s wall, $(awk "BEGIN{print $u + $s}") s CPU," \
    "$((m / 1024)) MiB peak RSS (load $load, others used $others cores)"
}

for n in $SIZES; do
  W=$WORK/n$n
  rm -rf "$W" "$W.synced"
  export XDG_CACHE_HOME=$W/cache
  say "n=$n: repository with $n synthetic blobs"
  "$SCALE" repo "$W/repo" "$n" >&2
  idx_mb=$(du -sb "$W/repo/index" | awk '{printf "%.1f", $1 / 1e6}')
  timed "$n" 1 sync "$BIN" -r "$W/repo" snapshots
  cache_mb=$(du -sb "$W/cache" | awk '{printf "%.1f", $1 / 1e6}')
  row "$n,1,index_objects,,,,,,,,$idx_mb,"
  row "$n,1,cache_file,,,,,,,,$cache_mb,"
  line=$("$SCALE" lookup "$W/repo" "$n" 200000)
  say "$line"
  field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
  hit=$(field hit_us)
  row "$n,1,lookup,,,,,$(cut -d' ' -f1 /proc/loadavg),${hit/-/},$(field miss_us),,"
  row "$n,1,pending,,,,,,,,$(field pending_ms),"
  cp -a "$W" "$W.synced"
  for r in $(seq 1 "$ROUNDS"); do
    if [ "$r" -gt 1 ]; then
      rm -rf "$W"
      cp -a "$W.synced" "$W"
    fi
    # shellcheck disable=SC2086 # BACKUP_ARGS is a list of words
    timed "$n" "$r" backup "$BIN" -r "$W/repo" backup -q ${BACKUP_ARGS:-} "$INPUT"
    # shellcheck disable=SC2086
    timed "$n" "$r" noop "$BIN" -r "$W/repo" backup -q ${BACKUP_ARGS:-} "$INPUT"
  done
  rm -rf "$W.synced"
  [ "${KEEP:-0}" = 1 ] || rm -rf "$W"
done

say "results: $CSV"
python3 "$HERE/scale_plot.py" "$CSV" "$PLOT"
