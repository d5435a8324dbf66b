#!/usr/bin/env bash
# The transfer recipe at several input resolutions: validation accuracy (the best epoch's, and
# the final evaluation's with the config's test-time views) and the whole recipe's wall time with
# an empty feature cache (extraction included), one run each. Extra `--set` overrides for every
# run can be given in SETS, e.g. SETS="--set transfer.train_blocks=1 --set augment.flip=false".
#   scripts/bench-transfer.sh [DATA] [RESOLUTION...]
# DATA defaults to the developer machines' CIFAR-10 JPEG copy; the resolution to the shipped 160.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/cifar10-train-jpeg.tar.gz}
shift || true
resolutions=("${@:-160}")
cargo build --release -q -p train -p infer
weights=../shared/weights/efficientnet-lite0-57934424.pth
if [ ! -f "$weights" ]; then
    weights=$(target/release/infer --fetch-weights | sed -n 's/^weights ready at //p')
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%-10s %-10s %-10s %-12s %s\n' resolution val_acc final seconds run
for resolution in ${resolutions[@]}; do
    cache="$out/cache-$resolution"
    start=$(date +%s)
    target/release/train --config configs/cifar-transfer.toml \
        --set data.dir="$data" --set data.cache_dir="$cache" --set output_dir="$out/runs" \
        --set transfer.resolution="$resolution" --set transfer.weights="$weights" ${SETS:-} >"$out/log-$resolution.txt"
    end=$(date +%s)
    run=$(sed -n 's/.*run saved to //p' "$out/log-$resolution.txt")
    acc=$(sed -n 's/.*"best_val_acc": \([0-9.]*\).*/\1/p' "$run/summary.json")
    final=$(sed -n 's/.*"accuracy": \([0-9.]*\).*/\1/p' "$run/summary.json")
    grep -E "features:|budget|^[0-9]+/" "$out/log-$resolution.txt" >&2
    printf '%-10s %-10s %-10s %-12s %s\n' "$resolution" "$acc" "$final" "$((end - start))" "$run"
done
