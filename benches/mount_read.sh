#!/usr/bin/env bash
# Sequential read of one large file through `mount` (cat > /dev/null) against `restore` of the
# same file, with a release build; prints both times and the ratio. Needs root and /dev/fuse.
#
#   benches/mount_read.sh            # 1 GiB
#   SIZE_MIB=256 benches/mount_read.sh
#
# The S3 feature is left out of the build (not used here; it halves the build time). Times are
# wall-clock on whatever else the machine is doing: run it a few times on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-1024}
cargo build --release --quiet --no-default-features --features fuse
BIN=$PWD/target/release/backup-to-s3

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/mount-bench.XXXXXX")
MOUNT_PID=
cleanup() {
  if grep -q " $WORK/mnt " /proc/self/mountinfo 2>/dev/null; then umount -l "$WORK/mnt" || true; fi
  if [ -n "$MOUNT_PID" ]; then kill "$MOUNT_PID" 2>/dev/null || true; wait "$MOUNT_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

export BACKUP_TO_S3_REPOSITORY=$WORK/repo BACKUP_TO_S3_PASSWORD=bench BACKUP_TO_S3_CACHE_DIR=$WORK/cache
unset BACKUP_TO_S3_PASSWORD_FILE BACKUP_TO_S3_PASSWORD_COMMAND

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }

"$BIN" -q init --kdf-memory-mib 8 --kdf-iterations 1
mkdir -p "$WORK/src" "$WORK/mnt" "$WORK/restore"
# Incompressible data: every chunk is decrypted and hashed at full size on the way back.
head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/src/big"
"$BIN" -q backup "$WORK/src"
rm "$WORK/src/big" # keep the page cache for the repository, not the source

"$BIN" -q mount "$WORK/mnt" &
MOUNT_PID=$!
for _ in $(seq 600); do [ -d "$WORK/mnt/snapshots" ] && break; sleep 0.1; done
FILE=$WORK/mnt/latest$WORK/src/big

t0=$(now)
cat "$FILE" > /dev/null
t1=$(now)
mount_s=$(secs "$t0" "$t1")

t0=$(now)
"$BIN" -q restore latest --target "$WORK/restore"
t1=$(now)
restore_s=$(secs "$t0" "$t1")

# Correctness of what was timed (not timed): the mount and the restore give the same bytes.
cmp "$FILE" "$WORK/restore$WORK/src/big"

umount "$WORK/mnt"
wait "$MOUNT_PID"
MOUNT_PID=

printf 'file:          %d MiB (random, incompressible)\n' "$SIZE_MIB"
printf 'mount (cat):   %6.2f s  %7.1f MiB/s\n' "$mount_s" "$(echo "$SIZE_MIB / $mount_s" | bc -l)"
printf 'restore:       %6.2f s  %7.1f MiB/s\n' "$restore_s" "$(echo "$SIZE_MIB / $restore_s" | bc -l)"
printf 'mount/restore: %6.2f (time ratio; < 1 means the mount is faster)\n' \
  "$(echo "$mount_s / $restore_s" | bc -l)"
