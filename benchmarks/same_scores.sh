#!/usr/bin/env bash
# Issue 28's behaviour check: SHA-256 of what `discover` writes on data/gz1-mini (candidates,
# and the checkpoint's tensors: its metadata header is a hash map whose order varies), and of
# what `score` writes on ../shared/data/gz1-sdss with CHECKPOINT (default: discover's). Run it
# with the binaries before and after a change, the second time with the first run's
# checkpoint; equal lines mean byte-identical scores.
# Usage: benchmarks/same_scores.sh BINARY OUT_DIR [CHECKPOINT]
set -euo pipefail
usage="usage: benchmarks/same_scores.sh BINARY OUT_DIR [CHECKPOINT]"
bin=${1:?$usage}
out=${2:?$usage}
mini=data/gz1-mini
sdss=../shared/data/gz1-sdss
rm -rf "$out"
"$bin" discover --quiet --images "$mini/images" --labels "$mini/labeled_data.csv" --iters 5 \
    --out "$out/discover" >/dev/null
checkpoint=${3:-$out/discover/checkpoint.safetensors}
sha256sum "$out/discover/candidates.csv" | sed "s|$out/||"
python3 - "$out/discover/checkpoint.safetensors" <<'PY'
import hashlib, struct, sys
data = open(sys.argv[1], "rb").read()
header = 8 + struct.unpack("<Q", data[:8])[0]
print(hashlib.sha256(data[header:]).hexdigest(), " discover/checkpoint.safetensors (tensors)")
PY
if [ -d "$sdss/images" ]; then
    "$bin" score --quiet --images "$sdss/images" --checkpoint "$checkpoint" \
        --out "$out/score" >/dev/null
    sha256sum "$out/score/scores.parquet" "$out/score/top_candidates.csv" | sed "s|$out/||"
else
    echo "skipping score: $sdss/images is absent"
fi
