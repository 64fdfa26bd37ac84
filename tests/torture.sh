#!/usr/bin/env bash
# kill -9 torture for operators: the drill of tests/it/torture.rs, longer and with the release
# binary. Usage:
#
#   tests/torture.sh [ROUNDS]        # default 30 rounds
#
# Environment: BIN (the binary; default: builds target/release/backup-to-s3), SEED (random seed,
# default: time-based, printed so a run can be replayed), WORK (working folder; default a new
# temporary folder, removed on success and kept on failure), EXTRA (a command line run and
# killed after each backup, e.g. EXTRA="forget --keep-last 3 --prune" once prune exists).
#
# Every round changes the source tree, starts `backup`, SIGKILLs it at a random moment (or lets
# it finish), optionally does the same to $EXTRA, then requires `check --read-data` to pass and
# every listed snapshot to carry a round tag. At the end one more backup must succeed and every
# snapshot must restore byte-exact to the tree of its round (compared with `diff -r`).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-30}
SEED=${SEED:-$(date +%s)}
RANDOM=$SEED
echo "torture: $ROUNDS rounds, SEED=$SEED"

if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=$PWD/target/release/backup-to-s3
fi
WORK=${WORK:-$(mktemp -d)}
KEEP=1
trap '[ $KEEP = 0 ] && rm -rf "$WORK" || echo "kept $WORK for inspection"' EXIT

export BACKUP_TO_S3_REPOSITORY=$WORK/repo
export BACKUP_TO_S3_PASSWORD=torture-password
export BACKUP_TO_S3_CACHE_DIR=$WORK/cache
unset BACKUP_TO_S3_PASSWORD_FILE BACKUP_TO_S3_PASSWORD_COMMAND
SRC=$WORK/src
mkdir -p "$SRC" "$WORK/expected"

fail() { echo "FAILED (SEED=$SEED): $*" >&2; exit 1; }

change_tree() {
  local r=$1
  mkdir -p "$SRC/d$((r % 3))"
  head -c $((1000000 + RANDOM * 64)) /dev/urandom >"$SRC/big$r.bin"
  rm -f "$SRC/big$((r - 3)).bin"
  head -c $((RANDOM * 8)) /dev/urandom >"$SRC/d$((r % 3))/small$r"
  printf 'round %s\n' "$r" >>"$SRC/log.txt"
  ln -sfn "big$r.bin" "$SRC/latest"
  rm -rf "$WORK/expected/$r"
  cp -a "$SRC" "$WORK/expected/$r"
}

# Run "$@" in the background and SIGKILL it after $1 milliseconds unless it ended first.
run_and_kill() {
  local ms=$1
  shift
  "$BIN" "$@" >/dev/null 2>&1 &
  local pid=$!
  local waited=0
  while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt "$ms" ]; do
    sleep 0.01
    waited=$((waited + 10))
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo killed
  else
    wait "$pid" || fail "$* failed on its own"
    echo finished
  fi
}

"$BIN" init --kdf-memory-mib 8 --kdf-iterations 1 --pack-size-mib 1 -q
change_tree 0
start=$(date +%s%N)
"$BIN" backup -q --tag round-0 "$SRC"
full_ms=$((($(date +%s%N) - start) / 1000000 + 50))
killed=0
for r in $(seq 1 "$ROUNDS"); do
  change_tree "$r"
  delay=$((RANDOM * full_ms * 5 / 4 / 32768))
  outcome=$(run_and_kill "$delay" backup -q --tag "round-$r" "$SRC")
  [ "$outcome" = killed ] && killed=$((killed + 1))
  if [ -n "${EXTRA:-}" ]; then
    # shellcheck disable=SC2086
    run_and_kill $((RANDOM * full_ms / 32768)) $EXTRA >/dev/null
  fi
  "$BIN" check --read-data -q || fail "check after round $r ($outcome after ${delay}ms)"
  echo "round $r: backup $outcome after ${delay}ms; check ok"
done
"$BIN" backup -q --tag "round-$ROUNDS" "$SRC" || fail "the backup after the last kill"
"$BIN" check --read-data -q || fail "final check"
for r in $(seq 0 "$ROUNDS"); do
  # A killed or forgotten round has none: grep finding nothing is no failure.
  "$BIN" snapshots --json --tag "round-$r" | { grep -o '"id":"[0-9a-f]\{64\}"' || true; } |
    cut -d'"' -f4 | sed "s/\$/ $r/"
done >"$WORK/snapshots.txt"
total=$("$BIN" snapshots --json | grep -o '"id":"[0-9a-f]\{64\}"' | wc -l)
[ "$total" -eq "$(wc -l <"$WORK/snapshots.txt")" ] || fail "a snapshot without a round tag"
count=0
while read -r id round; do
  rm -rf "$WORK/restore"
  "$BIN" restore -q "$id" --target "$WORK/restore" || fail "restore of $id (round $round)"
  diff -r --no-dereference "$WORK/expected/$round" "$WORK/restore$SRC" >/dev/null ||
    fail "snapshot $id differs from round $round"
  count=$((count + 1))
done <"$WORK/snapshots.txt"
[ "$count" -gt 0 ] || fail "no snapshots listed"
echo "torture passed: $ROUNDS rounds, $killed backups killed, $count snapshots restored exactly"
KEEP=0
