#!/usr/bin/env bash
# The whole test suite, as README.md gives it and .ci/run calls it. Installs what it needs on a
# fresh machine: the S3 server (s3s-fs) runs inside the test process, FUSE mounts use /dev/fuse
# directly (fuser's pure-Rust mount), the database-dump test starts its own PostgreSQL server
# from Debian's package (installed here when missing), the fuzz smoke run installs cargo-fuzz
# for the nightly toolchain. Nothing is skipped: a missing component fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "formatting"
cargo fmt --all -- --check

step "clippy (warnings are errors)"
cargo clippy --all-targets -- -D warnings

step "PostgreSQL server for the database-dump test"
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql
fi
ls -d /usr/lib/postgresql/*/bin

step "unit and integration tests (local, S3 via s3s-fs on 127.0.0.1, FUSE, PostgreSQL on 127.0.0.1)"
cargo test --lib --bins --tests 2>&1 | tee /tmp/backup-to-s3-test.log
grep -q "test result: ok" /tmp/backup-to-s3-test.log

if [ -x fuzz/smoke.sh ]; then
  step "fuzz smoke run of every decoder target"
  if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
  fi
  fuzz/smoke.sh "${FUZZ_SECONDS:-10}"
fi
step "all tests passed"
