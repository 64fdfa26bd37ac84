#!/usr/bin/env bash
# Build every fuzz target and run each for SECONDS (default 10). Exits non-zero if any target
# crashes, leaks, times out or exceeds the memory limits. Usage: fuzz/smoke.sh [SECONDS]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a nightly toolchain. Set
# FUZZ_TOOLCHAIN to use another toolchain name than "nightly".
set -euo pipefail

secs="${1:-10}"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
cd "$(dirname "$0")"

cargo "+$toolchain" fuzz build
targets=$(cargo "+$toolchain" fuzz list)

failed=()
for t in $targets; do
    mkdir -p "corpus/$t"
    # New inputs go to corpus/ (git-ignored); seeds/ holds the committed seed inputs.
    dirs=("corpus/$t")
    if [ -d "seeds/$t" ]; then dirs+=("seeds/$t"); fi
    echo "=== $t (${secs}s)"
    if ! cargo "+$toolchain" fuzz run "$t" "${dirs[@]}" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=20 \
        -print_final_stats=1 2>"corpus/$t.log"; then
        tail -n 40 "corpus/$t.log"
        failed+=("$t")
    else
        grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "corpus/$t.log" | tr '\n' ' '
        echo
    fi
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "fuzz smoke test FAILED: ${failed[*]} (crash inputs are in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz smoke test passed: $(echo $targets | wc -w) targets, ${secs}s each"
