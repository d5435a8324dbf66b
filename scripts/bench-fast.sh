#!/usr/bin/env bash
# The fast recipe's accuracy against time and arithmetic: runs `train` on a config and prints one
# row per run — seed, time budget, epochs, training PFLOP, seconds (since the process started) to
# reach 90, 93 and 94% validation accuracy, the last epoch's validation accuracy on the images as
# they are, and the final one with the config's test-time views — then the mean over the seeds.
#   scripts/bench-fast.sh [CONFIG] [DATA] [--set key=value ...]
# CONFIG defaults to configs/cifar-fast.toml; DATA to the developer machines' CIFAR-10 JPEG copy.
# SEEDS="42 43 44"  one run per seed, at the config's budget (default: 42 alone);
# BUDGETS="10 20 60"  besides, one run per budget in minutes with the first seed;
# ABLATE=1  besides, one run with the first seed per piece of airbench's method turned off (for
#   configs/cifar-airbench.toml).
# REFERENCE=1  besides, per seed, airbench94's own training in PyTorch on the same images and split
#   sizes (scripts/airbench_torch.py, 9.9 epochs, no time budget; PYTHON names an interpreter with
#   torch, numpy and pillow, default python3).
# Each run's directory stays under $OUT (default: a new temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-configs/cifar-fast.toml}
data=${2:-../shared/data/cifar10-train-jpeg.tar.gz}
shift 2 || shift $#
seeds=(${SEEDS:-42})
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
cargo build --release -q -p train

# One run: a label, then --set arguments; prints its row.
run() {
    local label=$1
    shift
    local log="$out/$label.log"
    local start
    start=$(date +%s.%N)
    target/release/train --config "$config" --set data.dir="$data" --set output_dir="$out/$label" \
        "$@" "${extra[@]}" |
        while IFS= read -r line; do
            case "$line" in
            *val_acc:*) printf '%.0f %s\n' "$(echo "$(date +%s.%N) - $start" | bc)" "${line##*val_acc: }" ;;
            esac
            echo "# $line"
        done >"$log"
    local summary
    summary=$(ls -d "$out/$label"/*/ | tail -1)summary.json
    awk -v label="$label" -v summary="$summary" '
        /^[0-9]/ { t = $1; a = $2; last = a
                   if (!t90 && a >= 0.90) t90 = t
                   if (!t93 && a >= 0.93) t93 = t
                   if (!t94 && a >= 0.94) t94 = t }
        END {
            while ((getline line < summary) > 0) {
                if (line ~ /"epochs_run"/) { gsub(/[^0-9]/, "", line); epochs = line }
                if (line ~ /"accuracy"/) { sub(/.*: /, "", line); sub(/,/, "", line); final = line }
                if (line ~ /"training_pflop"/) { sub(/.*: /, "", line); sub(/,/, "", line); pflop = line }
                if (line ~ /"seconds"/) { sub(/.*: /, "", line); sub(/,/, "", line); seconds = line }
            }
            printf "%-22s %6s %6.0f %8.3f %7s %7s %7s %9s %9.4f\n", label, epochs, seconds, pflop,
                t90 ? t90 : "-", t93 ? t93 : "-", t94 ? t94 : "-", last ? last : "-", final
        }' "$log" | tee -a "$out/rows.txt"
}

extra=("$@")
printf '%-22s %6s %6s %8s %7s %7s %7s %9s %9s\n' run epochs secs PFLOP "t90 s" "t93 s" "t94 s" \
    "last val" final | tee "$out/rows.txt"
for seed in "${seeds[@]}"; do
    run "seed-$seed" --set seed="$seed"
done
if [ "${REFERENCE:-0}" = 1 ]; then
    for seed in "${seeds[@]}"; do
        "${PYTHON:-python3}" scripts/airbench_torch.py "$data" --seed "$seed" >"$out/airbench-torch-$seed.log"
        tail -1 "$out/airbench-torch-$seed.log" | tee -a "$out/rows.txt"
    done
fi
awk 'NR > 1 && /^seed-/ { n++; final += $9; if ($8 != "-") last += $8 }
     END { if (n) printf "mean of %d seeds: final %.4f, last epoch %.4f\n", n, final / n, last / n }' \
    "$out/rows.txt"
for minutes in ${BUDGETS:-}; do
    run "budget-${minutes}m" --set seed="${seeds[0]}" --set time_budget_minutes="$minutes"
done
if [ "${ABLATE:-0}" = 1 ]; then
    first=(--set seed="${seeds[0]}")
    run no-lookahead "${first[@]}" --set lookahead_steps=0
    run no-triangle "${first[@]}" --set schedule.name=linear --set schedule.warmup_epochs=1
    run no-bias-lr-scale "${first[@]}" --set optimizer.batch_norm_bias_lr_scale=1
    run relu "${first[@]}" --set model.activation=relu
    run no-dirac "${first[@]}" --set model.dirac_init=false
    run batch-norm-scale "${first[@]}" --set model.batch_norm_scale=true
    run no-logit-scale "${first[@]}" --set model.logit_scale=1
    run no-whiten-bias "${first[@]}" --set model.whiten_bias_epochs=0
    run random-flip "${first[@]}" --set augment.alternate_flip=false
    run no-label-smoothing "${first[@]}" --set label_smoothing=0
fi
echo "runs and logs in $out"
