#!/usr/bin/env bash
# Issue 25's lever screen: short runs of the GZ1-merger protocol on the tuning seeds 42-44, one
# lever at a time against the recommended preset. Every finished seed is appended to the
# results file, and a rerun skips what that file already holds at the binary's commit (or
# continues a seed from its run folder), so the screen resumes where it stopped.
# Usage: benchmarks/screen.sh BINARY [RESULTS_FILE] [OUT_DIR] [LEVER...]
# With no LEVER, every lever below runs in order.
set -euo pipefail
bin=${1:?usage: benchmarks/screen.sh BINARY [RESULTS_FILE] [OUT_DIR] [LEVER...]}
results=${2:-benchmarks/results/screen.jsonl}
out=${3:-/tmp/screen}
shift $(($# < 3 ? $# : 3))
mkdir -p "$out"

# lever NAME: prints the lever's cycles, then its flags, one per line.
lever() {
    case $1 in
    base) echo 1 ;;
    supervised) printf '%s\n' 1 --baseline supervised --set 'benchmark.queries=[]' ;;
    iters200) printf '%s\n' 1 --iters 200 ;;
    size128) printf '%s\n' 1 --size 128 ;;
    size160) printf '%s\n' 1 --size 160 ;;
    class_thresholds) printf '%s\n' 1 --set train.class_thresholds=true ;;
    cosine) printf '%s\n' 1 --set train.schedule=cosine --set train.warmup_iterations=10 ;;
    lr015) printf '%s\n' 1 --set train.lr=0.015 ;;
    pcut080) printf '%s\n' 1 --set train.p_cutoff=0.8 ;;
    uratio3) printf '%s\n' 1 --set train.uratio=3 ;;
    flips) printf '%s\n' 1 --set score.views=flips ;;
    lite1) printf '%s\n' 1 --set model.architecture=efficientnet-lite1 \
        --set model.weights=../shared/weights/efficientnet-lite1-77cc7160.pth ;;
    lite2) printf '%s\n' 1 --set model.architecture=efficientnet-lite2 \
        --set model.weights=../shared/weights/efficientnet-lite2-9656183e.pth ;;
    base2) echo 2 ;;
    ensemble2) printf '%s\n' 2 --set active.ensemble=2 ;;
    final_iters200) printf '%s\n' 3 --iters 200 ;;
    combo) printf '%s\n' 3 --iters 200 --set score.views=flips --set train.p_cutoff=0.8 ;;
    *) echo "unknown lever: $1" >&2; return 1 ;;
    esac
}

levers=("$@")
[ ${#levers[@]} -gt 0 ] || levers=(base supervised iters200 size128 class_thresholds cosine
    lr015 pcut080 uratio3 flips lite1 lite2 size160 base2 ensemble2)
for name in "${levers[@]}"; do
    mapfile -t spec < <(lever "$name")
    [ ${#spec[@]} -gt 0 ] || continue
    cycles=${spec[0]}
    flags=("${spec[@]:1}")
    echo "==> $name, $cycles cycle(s): ${flags[*]}"
    log="$out/$name-$cycles.log"
    if ! "$bin" benchmark --quiet --seeds 42,43,44 --cycles "$cycles" --results "$results" \
        --out "$out/$name" "${flags[@]}" >"$log" 2>&1; then
        echo "FAILED: $name (see $log)"
    fi
    grep -v '^{' "$log" | tail -6
done
