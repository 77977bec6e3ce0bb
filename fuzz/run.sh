#!/usr/bin/env bash
# Runs the fuzz targets and prints, per target, the executions and the crashes found.
#
#   fuzz/run.sh                    # every target for 10^6 executions (the release check)
#   fuzz/run.sh --runs N [T...]    # N executions of the named targets
#   fuzz/run.sh --smoke S [T...]   # S seconds of each (what .ci/run does)
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Seeds come from the
# repository's own fixtures, so the fuzzer starts from valid files of each format. A crash
# leaves its input in fuzz/artifacts/TARGET/; it becomes a regression test, and this script
# exits 1.
set -uo pipefail
cd "$(dirname "$0")"
root=..

mode=(-runs=1000000)
if [ "${1:-}" = --runs ]; then mode=(-runs="$2"); shift 2; fi
if [ "${1:-}" = --smoke ]; then mode=(-max_total_time="$2"); shift 2; fi
targets=("$@")
if ((${#targets[@]} == 0)); then
    targets=(label_file class_file config image_decode fits hdf5 zip pth checkpoint server)
fi

# Seed corpora, rebuilt each run from the fixtures (libFuzzer adds what it finds beside them).
seed() {
    local target=$1
    shift
    mkdir -p "corpus/$target"
    for f in "$@"; do
        [ -f "$f" ] && cp "$f" "corpus/$target/seed-$(basename "$f")"
    done
}
mini=$root/data/gz1-mini
fixtures=$root/anomalymatch-io/tests/fixtures
seed label_file "$mini/labeled_data.csv"
seed class_file "$mini/classes.csv"
seed config "$root/anomalymatch-app/src/default_config.toml"
seed image_decode $(ls "$mini"/images/*.jpeg | head -4)
seed fits "$fixtures"/fits/*.fits "$fixtures"/fits/folder/*
seed hdf5 "$fixtures"/h5/*.h5
seed zip "$fixtures"/zip/*.zip
mkdir -p corpus/pth corpus/checkpoint corpus/server
# Server requests: a method/token byte (4: GET with the token, 5: POST with it), then
# PATH\nBODY. The first image name of the fuzz session is the one gz1-mini sorts first.
first=$(ls "$mini/images" | head -1)
i=0
for request in '\x04/api/status\n' '\x04/api/candidates?sort=strategy:top&limit=3\n' \
    "\\x04/api/image?name=$first&size=large\\n" \
    "\\x05/api/label\\n{\"name\":\"$first\",\"label\":\"remember\"}" \
    '\x05/api/model/save\n{"name":"m-1"}' '\x05/api/train\n{"iterations":1}' \
    '\x00/api/status?token=0\n' '\x04/api/events\n' '\x05/api/export\n'; do
    i=$((i + 1))
    printf "$request" >"corpus/server/seed-$i"
done

cargo +nightly fuzz build --sanitizer none >/dev/null 2>build.log || {
    echo "fuzz build failed; see fuzz/build.log"
    exit 2
}
failed=0
printf '%-14s %12s %8s %s\n' target executions crashes seconds
for t in "${targets[@]}"; do
    log=$(mktemp)
    start=$SECONDS
    # slow-unit-* files are inputs that took over 10 s of wall time: a timing, not a crash
    # (on a loaded machine, often the load). They stay for a look but are not counted.
    before=$(find "artifacts/$t" -type f ! -name "slow-unit-*" 2>/dev/null | wc -l)
    cargo +nightly fuzz run --sanitizer none "$t" "corpus/$t" -- "${mode[@]}" -max_len=65536 \
        -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1
    rc=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    crashes=$(($(find "artifacts/$t" -type f ! -name "slow-unit-*" 2>/dev/null | wc -l) - before))
    printf '%-14s %12s %8s %s\n' "$t" "${runs:-?}" "$crashes" "$((SECONDS - start))"
    if ((rc != 0)); then
        failed=1
        # The cause and the artifact, not libFuzzer's dump of the whole input.
        grep -E "panicked|ERROR|SUMMARY|Test unit written|cargo fuzz run" "$log" | head -12
    fi
    rm -f "$log"
done
exit $failed
