#!/usr/bin/env bash
# Sequential read of one large file through `mount` (cat > /dev/null, and cp to disk) against
# `restore` of the same file, with a release build; prints both times and the ratio. Needs root and /dev/fuse.
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

start_mount() {
  "$BIN" -q mount "$WORK/mnt" &
  MOUNT_PID=$!
  for _ in $(seq 600); do [ -d "$WORK/mnt/snapshots" ] && break; sleep 0.1; done
}
stop_mount() {
  umount "$WORK/mnt"
  wait "$MOUNT_PID"
  MOUNT_PID=
}
FILE=$WORK/mnt/latest$WORK/src/big

start_mount
t0=$(now)
cat "$FILE" > /dev/null
t1=$(now)
mount_s=$(secs "$t0" "$t1")
stop_mount

# The same read written to disk, as restore does; a fresh mount so the kernel's page cache of
# the first read does not serve it.
start_mount
t0=$(now)
cp "$FILE" "$WORK/copy"
t1=$(now)
copy_s=$(secs "$t0" "$t1")
rm "$WORK/copy"
stop_mount # restore gets the local index cache to itself, as it normally would

t0=$(now)
"$BIN" -q restore latest --target "$WORK/restore"
t1=$(now)
restore_s=$(secs "$t0" "$t1")

# Correctness of what was timed (not timed): the mount and the restore give the same bytes.
start_mount
cmp "$FILE" "$WORK/restore$WORK/src/big"

stop_mount

printf 'file:          %d MiB (random, incompressible)\n' "$SIZE_MIB"
printf 'mount (cat):   %6.2f s  %7.1f MiB/s\n' "$mount_s" "$(echo "$SIZE_MIB / $mount_s" | bc -l)"
printf 'mount (cp):    %6.2f s  %7.1f MiB/s\n' "$copy_s" "$(echo "$SIZE_MIB / $copy_s" | bc -l)"
printf 'restore:       %6.2f s  %7.1f MiB/s\n' "$restore_s" "$(echo "$SIZE_MIB / $restore_s" | bc -l)"
printf 'mount/restore: %6.2f (cat), %.2f (cp) (time ratios; < 1: the mount is faster)\n' \
  "$(echo "$mount_s / $restore_s" | bc -l)" "$(echo "$copy_s / $restore_s" | bc -l)"
