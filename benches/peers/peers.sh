#!/usr/bin/env bash
# peers.sh - benchmark one backup tool on one dataset; prints CSV on stdout:
# (copy of shared/bench/peers.sh; the `ours` adapter runs prune with --now, and OURS_ARGS adds
#  global options to every call of ours)
#   tool,dataset,op,wall_s,cpu_s,max_rss_kb,repo_bytes
#
# Usage: peers.sh DATASET_DIR TOOL          TOOL in: restic borg rustic ours
#
# Sequence (every op timed with /usr/bin/time -v; repo_bytes = du -sb of repo after op):
#   init (+ extra throwaway inits when REPEAT>1), backup-full, backup-noop-N (REPEAT x),
#   [modify working copy - not timed], backup-modified, restore (latest -> empty dir),
#   verify:OK|verify:FAIL (compares restored tree to source; times the verification itself),
#   check-read-data, prune-keep-last-1
#
# The dataset is never modified: a working copy is backed up (WORKCOPY=hardlink: `cp -al`,
# the default - fast, but every file then
# has nlink>=2, so borg treats every file as a hardlink master; WORKCOPY=copy: real `cp -a`,
# slower, most realistic), and the "modified" state is produced by replacing files with new
# inodes (so the dataset itself is never written):
#   - if DATASET_DIR-modified/ exists (e.g. vmimage-modified), its files replace the
#     working copy's files (cp -al --remove-destination);
#   - otherwise 1% of regular files are rewritten (every 200th: 32 bytes appended;
#     every 200th+100: only mtime bumped) and 100 new 1-64 KiB files are added.
#
# Env:
#   BENCH_TMP   work root (default /tmp/bench-work); repo, cache, restore dir, logs go here
#   REPEAT      how many times to repeat cheap ops (init, no-op backup); default 2
#   REPEAT_RESTORE  how many times to run restore (default 1)
#   RESTORE_SETTLE  seconds to wait (after sync) before each restore (default 0)
#   GRAVEYARD   move restored trees here instead of deleting them (compare.sh sets it and empties
#               it at the end), so no restore follows a mass deletion (see the restore step)
#   KEEP=1      keep repo/working copy afterwards (default: delete)
#   WORKCOPY    hardlink (default) | copy   - how the working copy is made (see above)
#   RESTIC, BORG, RUSTIC  binary paths (default: from PATH)
#   OURS        path of our tool's binary (required for TOOL=ours)
#   BENCH_PASSWORD  repository password (default "bench-password"); exported as
#               RESTIC_PASSWORD, BORG_PASSPHRASE, RUSTIC_PASSWORD and OURS_PASSWORD
set -euo pipefail
[ $# -eq 2 ] || { sed -n '2,30p' "$0" >&2; exit 2; }
DATA=$(realpath "$1"); TOOL=$2
DS=$(basename "$DATA")
T=${BENCH_TMP:-/tmp/bench-work}/$TOOL-$DS
REPEAT=${REPEAT:-2}
REPEAT_RESTORE=${REPEAT_RESTORE:-1}
PW=${BENCH_PASSWORD:-bench-password}
export RESTIC_PASSWORD=$PW BORG_PASSPHRASE=$PW RUSTIC_PASSWORD=$PW OURS_PASSWORD=$PW BACKUP_TO_S3_PASSWORD=$PW
export BORG_BASE_DIR=$T/home BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export RESTIC_CACHE_DIR=$T/cache XDG_CACHE_HOME=$T/cache HOME=$T/home
RESTIC=${RESTIC:-restic}; BORG=${BORG:-borg}; RUSTIC=${RUSTIC:-rustic}
HASHER=$(command -v b3sum || command -v sha256sum)

REPO=$T/repo; WORK=$T/src; LOG=$T/log
rm -rf "$T"; mkdir -p "$T/home" "$T/cache" "$LOG"
LOGKEEP=${BENCH_TMP:-/tmp/bench-work}/logs/$TOOL-$DS; rm -rf "$LOGKEEP"; mkdir -p "$LOGKEEP"

# ---------------------------------------------------------------- tool adapters
# Each adapter sets the array CMD for: c_init R | c_backup R PATH N | c_restore R DIR N |
# c_check R | c_prune R   (N = backup number; borg needs archive names.)
# Multi-step ops are wrapped in `sh -c` so /usr/bin/time covers the whole op.
case "$TOOL" in
restic)
  c_init()    { CMD=("$RESTIC" -r "$1" init); }
  c_backup()  { CMD=("$RESTIC" -r "$1" backup --host bench "$2"); }
  c_restore() { CMD=("$RESTIC" -r "$1" restore latest --target "$2"); }
  c_check()   { CMD=("$RESTIC" -r "$1" check --read-data); }
  c_prune()   { CMD=("$RESTIC" -r "$1" forget --keep-last 1 --prune); }
  ;;
borg)
  c_init()    { CMD=("$BORG" init --encryption=repokey-blake2 "$1"); }
  c_backup()  { CMD=("$BORG" create --stats --compression zstd,3 "$1::snap$3" "$2"); }
  c_restore() { CMD=(sh -c 'cd "$1" && exec "$2" extract "$3"' _ "$2" "$BORG" "$1::snap$3"); }
  c_check()   { CMD=("$BORG" check --verify-data "$1"); }
  c_prune()   { CMD=(sh -c '"$1" prune --keep-last 1 "$2" && "$1" compact "$2"' _ "$BORG" "$1"); }
  ;;
rustic)
  c_init()    { CMD=("$RUSTIC" -r "$1" --no-progress init); }
  c_backup()  { CMD=("$RUSTIC" -r "$1" --no-progress backup --host bench "$2"); }
  c_restore() { CMD=("$RUSTIC" -r "$1" --no-progress restore latest "$2"); }
  c_check()   { CMD=("$RUSTIC" -r "$1" --no-progress check --read-data); }
  c_prune()   { CMD=("$RUSTIC" -r "$1" --no-progress forget --keep-last 1 --prune); }
  ;;
# ======================= OUR TOOL ==========================================
# Binary from $OURS (target/release/backup-to-s3); password from BACKUP_TO_S3_PASSWORD.
ours)
  : "${OURS:?set OURS=/path/to/our/binary}"
  # shellcheck disable=SC2206
  OA=(${OURS_ARGS:-})
  c_init()    { CMD=("$OURS" "${OA[@]}" init --repo "$1"); }
  c_backup()  { CMD=("$OURS" "${OA[@]}" backup --repo "$1" "$2"); }
  c_restore() { CMD=("$OURS" "${OA[@]}" restore --repo "$1" latest --target "$2"); }
  c_check()   { CMD=("$OURS" "${OA[@]}" check --repo "$1" --read-data); }
  # --now: delete in this run, as restic and borg do (by default our prune only condemns
  # packs and deletes them on a later run, so running backups are never disturbed).
  c_prune()   { CMD=("$OURS" "${OA[@]}" forget --repo "$1" --keep-last 1 --prune --now); }
  ;;
# ===========================================================================
*) echo "unknown tool $TOOL" >&2; exit 2 ;;
esac

# ---------------------------------------------------------------- measurement
# measure OPNAME REPO ADAPTER ARGS... -> one CSV line; time -v output + tool output in $LOGKEEP
measure() {
  local op=$1 repo=$2 ad=$3; shift 3
  local rc=0
  "$ad" "$@"
  if [ ${#CMD[@]} -eq 0 ]; then printf '%s,%s,%s:n/a,,,,\n' "$TOOL" "$DS" "$op"; return 0; fi
  echo "${CMD[*]}" > "$LOGKEEP/$op.cmd"
  /usr/bin/time -v -o "$LOGKEEP/$op.time" "${CMD[@]}" >"$LOGKEEP/$op.out" 2>&1 || rc=$?
  local wall user sys rss bytes
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$LOGKEEP/$op.time")
  user=$(awk -F': ' '/User time/{print $2}' "$LOGKEEP/$op.time")
  sys=$(awk -F': ' '/System time/{print $2}' "$LOGKEEP/$op.time")
  rss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$LOGKEEP/$op.time")
  bytes=$(du -sb "$repo" 2>/dev/null | cut -f1 || true); bytes=${bytes:-0}
  [ $rc -eq 0 ] || { echo "!! $TOOL $DS $op failed (rc=$rc), see $LOGKEEP/$op.out" >&2; op="$op:FAIL(rc=$rc)"; }
  printf '%s,%s,%s,%s,%.2f,%s,%s\n' "$TOOL" "$DS" "$op" "$wall" "$(echo "$user + $sys" | bc)" "$rss" "$bytes"
  return 0
}

# manifest of a tree: type, path, mode, size, mtime(ns), owner, link target + content hash
manifest() {
  (cd "$1" && find . -mindepth 1 \( -type f -printf 'f %p %m %s %T@ %U:%G\n' \) -o \
        \( -type l -printf 'l %p -> %l\n' \) -o \( -type d -printf 'd %p %m %U:%G\n' \) | LC_ALL=C sort
   cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r "$HASHER" | LC_ALL=C sort -k2)
}
verify() { # verify SRC RESTORED_DIR -> rc 0 if identical
  local got=$2
  [ -d "$2/${WORK#/}" ] && got=$2/${WORK#/}            # tools that restore absolute paths
  manifest "$1" > "$LOG/m.src"; manifest "$got" > "$LOG/m.dst"
  diff "$LOG/m.src" "$LOG/m.dst" > "$LOGKEEP/verify.diff"
}

warm() { # read a tree into the page cache (untimed), so that no tool pays for a cold read that
  # the previous one did not (the issue measures with a warm page cache)
  find "$1" -type f -print0 | xargs -0 -r cat > /dev/null
}

modify_tree() { # deterministic 1% modification + 100 new files; replaces inodes (never touches DATA)
  python3 - "$WORK" <<'EOF'
import os, random, sys
root = sys.argv[1]; rng = random.Random(7)
files = []
for dp, dn, fn in os.walk(root):
    dn.sort()
    for f in sorted(fn):
        p = os.path.join(dp, f)
        if os.path.isfile(p) and not os.path.islink(p): files.append(p)
files.sort()
for i, p in enumerate(files):
    if i % 100 not in (0,): continue
    st = os.stat(p)
    with open(p, 'rb') as f: data = f.read()
    tmp = p + '.benchtmp'
    with open(tmp, 'wb') as f:
        f.write(data + (b'bench-modified %08d\n' % i if i % 200 == 0 else b''))
    os.chmod(tmp, st.st_mode & 0o7777); os.chown(tmp, st.st_uid, st.st_gid)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns + 3_600_000_000_000))
    os.replace(tmp, p)
dirs = sorted({os.path.dirname(p) for p in files})
for j in range(100):
    d = dirs[rng.randrange(len(dirs))]
    with open(os.path.join(d, 'bench-new-%03d.dat' % j), 'wb') as f:
        f.write(rng.randbytes(rng.randint(1024, 65536)) if j % 2 else (b'new file %d\n' % j) * rng.randint(50, 3000))
print(f"modified {len(range(0, len(files), 100))} of {len(files)} files, added 100", file=sys.stderr)
EOF
}

# ---------------------------------------------------------------- run
echo "# $TOOL on $DS: work dir $T, logs $LOGKEEP" >&2
if [ "${WORKCOPY:-hardlink}" = hardlink ]; then cp -al "$DATA" "$WORK"; else cp -a "$DATA" "$WORK"; fi
sync
measure init "$REPO" c_init "$REPO"
for i in $(seq 2 "$REPEAT"); do measure "init-$i" "$T/repo-tmp$i" c_init "$T/repo-tmp$i"; rm -rf "$T/repo-tmp$i"; done
warm "$WORK"
measure backup-full "$REPO" c_backup "$REPO" "$WORK" 1
n=1
for i in $(seq 1 "$REPEAT"); do n=$((n+1)); measure "backup-noop-$i" "$REPO" c_backup "$REPO" "$WORK" $n; done
if [ -d "$DATA-modified" ]; then
  if [ "${WORKCOPY:-hardlink}" = hardlink ]; then cp -al --remove-destination "$DATA-modified/." "$WORK/"
  else cp -a --remove-destination "$DATA-modified/." "$WORK/"; sync; fi
else
  modify_tree 2>>"$LOGKEEP/modify.log"
fi
warm "$WORK"
n=$((n+1)); measure backup-modified "$REPO" c_backup "$REPO" "$WORK" $n
for i in $(seq 1 "$REPEAT_RESTORE"); do
  rm -rf "$T/restore"; mkdir -p "$T/restore"
  # ext4 without a journal skips free inodes deleted in the last 60 s (300 s while their block
  # is dirty) when it allocates new ones: a restore of many files soon after a run that deleted
  # many spends most of its time in that scan. Measured: our 50k-file restore took 3.2 s after
  # nothing and 29–34 s after a cleanup, even 65 s later; in session 16 our 200k-file restore
  # took 30 s (5.7–7.7 s in runs Q and R) four minutes after compare.sh had deleted the previous run's
  # restored trees. So restored trees are moved to $GRAVEYARD (deleted by compare.sh at the
  # end) instead of being deleted between tools, and runs should be 5 minutes apart.
  sync; sleep "${RESTORE_SETTLE:-0}"
  op=restore; [ "$REPEAT_RESTORE" -gt 1 ] && op=restore-$i
  measure "$op" "$REPO" c_restore "$REPO" "$T/restore" $n
done
t0=$(date +%s.%N)
if verify "$WORK" "$T/restore"; then res=OK; else res=FAIL; echo "!! restore differs, see $LOGKEEP/verify.diff" >&2; fi
printf '%s,%s,verify:%s,%.2f,,,\n' "$TOOL" "$DS" "$res" "$(echo "$(date +%s.%N) - $t0" | bc)"
if [ -n "${GRAVEYARD:-}" ]; then mkdir -p "$GRAVEYARD"; mv "$T/restore" "$GRAVEYARD/$TOOL-$DS-$$-$RANDOM"
else rm -rf "$T/restore"; fi
measure check-read-data "$REPO" c_check "$REPO"
measure prune-keep-last-1 "$REPO" c_prune "$REPO"
du -sb "$T/home" "$T/cache" > "$LOGKEEP/local-cache-size.txt" 2>/dev/null || true
# The working copy (hard links: its folders are the only new inodes) goes to the graveyard too:
# deleting the 13,000 folders of the 200k-file copy slowed the next tool's /usr restore
# (session 8, run D: 15.1 s against 6.4-9.9 s in the other rounds).
if [ -n "${GRAVEYARD:-}" ] && [ "${KEEP:-0}" != 1 ]; then mkdir -p "$GRAVEYARD" && mv "$WORK" "$GRAVEYARD/work-$TOOL-$DS-$$-$RANDOM"; fi
[ "${KEEP:-0}" = 1 ] || rm -rf "$T"
