#!/usr/bin/env bash
# Accuracy against wall time for a recipe: runs `train` on a config and prints, for every epoch,
# the seconds since the process started and the validation accuracy, then the time to reach 70%
# (the tutorial's result), the accuracy after 10 minutes and the final accuracy.
#   scripts/bench-fast.sh [CONFIG] [DATA] [--set ...]
# CONFIG defaults to configs/cifar-fast.toml; DATA to the developer machines' CIFAR-10 JPEG copy.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-configs/cifar-fast.toml}
data=${2:-../shared/data/cifar10-train-jpeg.tar.gz}
shift 2 || shift $#
cargo build --release -q -p train
out=$(mktemp -d)
start=$(date +%s.%N)
target/release/train --config "$config" --set data.dir="$data" --set output_dir="$out" "$@" |
    while IFS= read -r line; do
        now=$(date +%s.%N)
        case "$line" in
        *val_acc:*)
            acc=${line##*val_acc: }
            printf '%8.0f s  val_acc %s\n' "$(echo "$now - $start" | bc)" "$acc"
            ;;
        *"time budget"* | *"validation accuracy"* | *"test accuracy"* | *"run saved"*) echo "$line" ;;
        esac
    done | tee "$out/curve.txt"
awk '/val_acc/ { t = $1; a = $4
        if (!r70 && a >= 0.70) r70 = t
        if (t <= 600) at10 = a }
     END { printf "time to 70%%: %s; accuracy at 10 min: %s\n", r70 ? r70 " s" : "not reached", at10 ? at10 : "no epoch yet" }' "$out/curve.txt"
