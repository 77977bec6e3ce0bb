#!/usr/bin/env bash
# Issue 25's first-screen check: `anomalymatch discover` on the built-in data, recommended
# preset, one run per seed, each on its own (run it on an idle machine). Each finished seed
# appends one line to RESULTS: the seed, the code's commit, wall time, peak RSS and the
# command's hidden-truth line. Seeds already in RESULTS at that commit are not run again.
# Usage: benchmarks/discover_seeds.sh BINARY COMMIT RESULTS SEED...
set -euo pipefail
bin=${1:?usage: benchmarks/discover_seeds.sh BINARY COMMIT RESULTS SEED...}
commit=${2:?commit of the code BINARY was built from}
results=${3:?results file}
shift 3
touch "$results"
for seed in "$@"; do
    if grep -q "^seed $seed commit $commit " "$results"; then
        echo "seed $seed: already in $results"
        continue
    fi
    out=$(mktemp -d)
    /usr/bin/time -v "$bin" discover --quiet --seed "$seed" --out "$out" >"$out/stdout" 2>"$out/time"
    wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$out/time")
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$out/time")
    truth=$(grep '^hidden truth' "$out/stdout" | sed 's/^hidden truth ([^)]*): //')
    line="seed $seed commit $commit wall $wall peak_rss_gb $(awk "BEGIN{printf \"%.2f\", $rss/1048576}") | $truth"
    echo "$line" | tee -a "$results"
    rm -rf "$out"
done
