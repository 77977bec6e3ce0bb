#!/usr/bin/env bash
# Issue 25's lever screen: short runs of the GZ1-merger protocol on the tuning seeds 42-44, one
# lever at a time against the recommended preset. Every finished seed is appended to the
# results file, and a rerun skips what that file already holds (or continues a seed from its
# run folder), so the screen resumes where it stopped.
# Usage: benchmarks/screen.sh BINARY [RESULTS_FILE] [OUT_DIR]
set -euo pipefail
bin=${1:?usage: benchmarks/screen.sh BINARY [RESULTS_FILE] [OUT_DIR]}
results=${2:-benchmarks/results/screen.jsonl}
out=${3:-/tmp/screen}
mkdir -p "$out"
# run NAME CYCLES [FLAGS...]: one lever, its summary printed, its log kept in OUT_DIR.
run() {
    local name=$1 cycles=$2
    shift 2
    echo "==> $name, $cycles cycle(s): $*"
    if ! "$bin" benchmark --quiet --seeds 42,43,44 --cycles "$cycles" --results "$results" \
        --out "$out/$name" "$@" >"$out/$name-$cycles.log" 2>&1; then
        echo "FAILED: $name (see $out/$name-$cycles.log)"
    fi
    grep -v '^{' "$out/$name-$cycles.log" | tail -6
}
run base 1
run supervised 1 --baseline supervised --set 'benchmark.queries=[]'
run iters200 1 --iters 200
run size128 1 --size 128
run cosine 1 --set train.schedule=cosine
run pcut080 1 --set train.p_cutoff=0.8
run base 2
run ensemble2 2 --set active.ensemble=2
run lr015 1 --set train.lr=0.015
