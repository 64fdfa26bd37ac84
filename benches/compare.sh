#!/usr/bin/env bash
# compare.sh - our binary against restic and Borg on the same corpora, back to back.
#
# Usage:  benches/compare.sh                 (from anywhere; needs root for apt-get on a fresh box)
#
# Steps: installs restic and borgbackup from the distribution (apt-get) when missing, builds our
# release binary, generates the corpora (benches/peers/make-corpus.sh), then for each round and
# dataset runs every tool with benches/peers/peers.sh (init, first backup, no-op backups, backup
# after modification, restore verified exact, check --read-data, forget --keep-last 1 --prune),
# alternating the tool order between rounds, and prints a Markdown report with ratios.
#
# Env:
#   SIZE      small (default: 500 MB of /usr, 512 MiB image + modified copy, 50k small files;
#             one round of the three tools takes ~10 min on 2 cores) | full (shared generator sizes:
#             2.5 GB /usr, 2 GiB image, 200k files; ~1 h per round)
#   ROUNDS    rounds (default 2); the report shows the best and median wall time over rounds
#   TOOLS     default "ours restic borg" (rustic works too when installed)
#   DATASETS  default "vmimage small-files usr"; also "zeros random logs" (corpora the default
#             run does not hold: a 2 GiB image 70% zeros, 1.5 GB of incompressible files, 1.4 GB
#             of log text; benches/make-extra-corpora.py and make-logs-corpus.py)
#   BENCH_DATA  corpora (default /tmp/bench-data-$SIZE); BENCH_TMP work dir (default /tmp/bench-work)
#   OUT_DIR   results (default /tmp/bench-results); the CSV, a load log and report.md go there
#   OURS      use this binary instead of building target/release/backup-to-s3
#   SKIP_INSTALL=1  do not call apt-get
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PEERS=$HERE/peers
SIZE=${SIZE:-small}
ROUNDS=${ROUNDS:-2}
TOOLS=${TOOLS:-ours restic borg}
DATASETS=${DATASETS:-vmimage small-files usr}
export BENCH_DATA=${BENCH_DATA:-/tmp/bench-data-$SIZE}
export BENCH_TMP=${BENCH_TMP:-/tmp/bench-work}
# Restored trees are kept until the end: deleting many files slows the next restore's inode
# allocation on ext4 without a journal (peers.sh, restore step).
export GRAVEYARD=${GRAVEYARD:-$BENCH_TMP/graveyard}
OUT_DIR=${OUT_DIR:-/tmp/bench-results}
STAMP=$(date +%Y%m%d-%H%M%S)
CSV=$OUT_DIR/compare-$SIZE-$STAMP.csv
LOADS=$OUT_DIR/compare-$SIZE-$STAMP.load.csv
REPORT=$OUT_DIR/compare-$SIZE-$STAMP.md
mkdir -p "$OUT_DIR"

say() { echo "== $*" >&2; }

# 1. peers and tools
need=()
for t in $TOOLS; do
  case $t in restic) command -v restic >/dev/null || need+=(restic) ;;
             borg) command -v borg >/dev/null || need+=(borgbackup) ;; esac
done
command -v b3sum >/dev/null || need+=(b3sum)
command -v bc >/dev/null || need+=(bc)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  if [ "${SKIP_INSTALL:-0}" = 1 ]; then echo "missing: ${need[*]}" >&2; exit 1; fi
  say "installing ${need[*]}"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# 2. our binary
if [ -z "${OURS:-}" ]; then
  say "building the release binary"
  (cd "$ROOT" && cargo build --release --quiet --bin backup-to-s3)
  OURS=$ROOT/target/release/backup-to-s3
fi
export OURS

# 3. corpora
say "corpora ($SIZE) in $BENCH_DATA"
# Only the corpora of the datasets asked for (the full usr and image corpora take minutes).
# zeros, random and logs are the held-out corpora of sessions 13-14 (not sized by SIZE; made
# once, delete the folder to make it again).
for ds in $DATASETS; do
  case $ds in small-files) SIZE=$SIZE "$PEERS/make-corpus.sh" small ;;
              zeros|random) [ -d "$BENCH_DATA/$ds" ] ||
                python3 "$HERE/make-extra-corpora.py" "$ds" "$BENCH_DATA/$ds" ;;
              logs) [ -d "$BENCH_DATA/$ds" ] || python3 "$HERE/make-logs-corpus.py" "$BENCH_DATA/$ds" ;;
              *) SIZE=$SIZE "$PEERS/make-corpus.sh" "$ds" ;; esac
done

# 4. the machine
{
  echo "# backup-to-s3 vs peers, SIZE=$SIZE, $ROUNDS round(s), $(date -u +%FT%TZ)"
  echo
  echo "- machine: $(nproc) CPUs ($(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)), $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -sr)"
  echo "- ours: $("$OURS" --version 2>/dev/null) ($(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')), $(rustc --version 2>/dev/null || echo 'rustc ?')"
  for t in $TOOLS; do
    case $t in restic) echo "- $(restic version 2>/dev/null | head -1)" ;;
               borg) echo "- $(borg --version 2>/dev/null)" ;;
               rustic) echo "- $(rustic --version 2>/dev/null)" ;; esac
  done
  echo "- load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$REPORT.head"

# 5. rounds: every dataset, tools back to back, order reversed on even rounds
echo "round,tool,dataset,op,wall_s,cpu_s,max_rss_kb,repo_bytes" > "$CSV"
echo "round,tool,dataset,load1_before,load1_after" > "$LOADS"
for r in $(seq 1 "$ROUNDS"); do
  order=$TOOLS
  [ $((r % 2)) -eq 0 ] && order=$(echo "$TOOLS" | tr ' ' '\n' | tac | tr '\n' ' ')
  for ds in $DATASETS; do
    for t in $order; do
      l0=$(cut -d' ' -f1 /proc/loadavg)
      say "round $r $t $ds $(date +%T) load $l0"
      "$PEERS/peers.sh" "$BENCH_DATA/$ds" "$t" | sed "s/^/$r,/" | tee -a "$CSV" >&2
      echo "$r,$t,$ds,$l0,$(cut -d' ' -f1 /proc/loadavg)" >> "$LOADS"
    done
  done
  # One round's restored trees take ~18 GB at SIZE=full (two rounds filled a 40 GB disk).
  # Between rounds their files are emptied, not deleted: that frees the blocks but no inode,
  # so the next round's restores do not meet ext4's skipping of freed inodes (peers.sh,
  # restore step; deleting them most likely slowed the 200k-file restores of the next round
  # by 13-64%, every tool's, in session 15's run N). Work copies are hard links to the
  # corpora and are never emptied; neither is any file with a second link.
  if [ "$r" -lt "$ROUNDS" ] && [ -d "$GRAVEYARD" ]; then
    for d in "$GRAVEYARD"/*; do
      case ${d##*/} in work-*) continue ;; esac
      find "$d" -type f -links 1 -size +0 -exec truncate -s 0 {} +
    done
    sync
  fi
done
echo "- load after the run: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$REPORT.head"
rm -rf "$GRAVEYARD"
say "deleted this run's restored trees: on ext4 without a journal, restores of many files in the" \
    "next 5 minutes are slowed by the inode allocator (peers.sh, restore step); wait before timing them"

# 6. report
{ cat "$REPORT.head"; echo; python3 "$HERE/report.py" --data "$BENCH_DATA" --loads "$LOADS" "$CSV"; } > "$REPORT"
rm -f "$REPORT.head"
cat "$REPORT"
say "CSV: $CSV  report: $REPORT"
