#!/usr/bin/env bash
# Issue 27's quality check of `train.weak_pass`: the original preset on the tuning seeds 42-44,
# the weak view in a pass of its own ("separate") and in the joint pass (the original's).
# Finished seeds are in benchmarks/results/weak_pass.jsonl and are not run again; a killed
# seed resumes from its last finished cycle in OUT. Usage: benchmarks/weak_pass.sh BINARY [OUT]
set -euo pipefail
bin=${1:?usage: benchmarks/weak_pass.sh BINARY [OUT]}
out=${2:-/tmp/weak}
for mode in separate joint; do
    "$bin" benchmark --preset original --quiet --seeds 42,43,44 \
        --results benchmarks/results/weak_pass.jsonl --out "$out/$mode" \
        --set "train.weak_pass=\"$mode\""
done
