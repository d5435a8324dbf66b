#!/usr/bin/env bash
# The GPU build on a GPU machine that has no internet, with binaries built elsewhere: one epoch of
# the convnet recipe, the transfer recipe's feature extraction of IMAGES images at 224x224, and
# `infer` classifying COPIES copies of a photo as one batch; images/s for each, beside PyTorch
# doing the same work (scripts/gpu_check_torch.py) when PYTHON can `import torch`.
#   scripts/gpu-check.sh [BIN_DIR]
# BIN_DIR holds `train` and `infer` built with --features cuda or wgpu (default target/release).
# SHARED names the folder with data/cifar10-train-jpeg.tar.gz, weights/efficientnet-lite0-*.pth
# and images/koala.jpg (default ../shared), so nothing is downloaded. IMAGES defaults to 10000,
# COPIES to 256, PYTHON to python3. Nothing is written outside a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-target/release}")
shared=$(realpath "${SHARED:-../shared}")
images=${IMAGES:-10000}
copies=${COPIES:-256}
python=${PYTHON:-python3}
archive=$shared/data/cifar10-train-jpeg.tar.gz
weights=$(ls "$shared"/weights/efficientnet-lite0-*.pth)
photo=$shared/images/koala.jpg
for file in "$bin/train" "$bin/infer" "$archive" "$weights" "$photo"; do
    [ -e "$file" ] || { echo "gpu-check: $file is missing (see the comment at the top of $0)" >&2; exit 1; }
done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export CONVKIT_CACHE=$out/cache
rate() { echo "$1 / $2" | bc -l | xargs printf '%.1f'; }
echo "task      images    seconds   images/s  system"

# One epoch of the tutorial's recipe: training on 37,500 images, then validation on 12,500.
"$bin/train" --config configs/cifar.toml --set epochs=1 --set data.dir="$archive" \
    --set output_dir="$out/runs" >"$out/convnet.log"
head -2 "$out/convnet.log" >&2
run=$(sed -n 's/.*run saved to //p' "$out/convnet.log")
seconds=$(sed -n '2p' "$run/metrics.csv" | cut -d, -f2)
train_images=$(sed -n 's/.*"train_images": \([0-9]*\).*/\1/p' "$run/summary.json")
printf '%-9s %-9s %-9.1f %-9s %s\n' convnet "$train_images" "$seconds" "$(rate "$train_images" "$seconds")" burn

# Feature extraction of IMAGES images (the first IMAGES/10 of each class), at 224x224.
mkdir -p "$out/all" "$out/subset/train"
tar -xzf "$archive" -C "$out/all"
for class in "$out"/all/train/*/; do
    files=("$class"*)
    mkdir -p "$out/subset/train/$(basename "$class")"
    cp "${files[@]:0:$((images / 10))}" "$out/subset/train/$(basename "$class")/"
done
"$bin/train" --config configs/cifar-transfer.toml --set epochs=1 --set data.dir="$out/subset" \
    --set transfer.resolution=224 --set transfer.weights="$weights" \
    --set output_dir="$out/runs" >"$out/features.log"
# Each split prints "<split> features: N images at 224x224 in Ss (R images/s)".
read -r extracted seconds < <(sed -n 's/.*features: \([0-9]*\) images at .* (\([0-9.]*\) images\/s).*/\1 \2/p' "$out/features.log" |
    awk '{ n += $1; s += $1 / $2 } END { print n, s }')
printf '%-9s %-9s %-9.1f %-9s %s\n' features "$extracted" "$seconds" "$(rate "$extracted" "$seconds")" burn

# infer on COPIES copies of the photo, whole process; the second run is timed (kernels compiled).
for i in $(seq 1 "$copies"); do ln -s "$photo" "$out/copy-$i.jpg"; done
for attempt in first timed; do
    start=$(date +%s.%N)
    "$bin/infer" --weights "$weights" "$out"/copy-*.jpg >"$out/infer.log" 2>"$out/infer.err"
    end=$(date +%s.%N)
done
seconds=$(echo "$end - $start" | bc -l)
grep -m1 backend "$out/infer.err" >&2
printf '%-9s %-9s %-9.1f %-9s %s\n' infer "$copies" "$seconds" "$(rate "$copies" "$seconds")" "burn (whole process)"

if "$python" -c 'import torch' 2>/dev/null; then
    "$python" scripts/gpu_check_torch.py "$archive" "$weights" "$photo" "$images" "$copies" >"$out/torch.log"
    head -1 "$out/torch.log" >&2
    tail -n +2 "$out/torch.log" | while read -r task n seconds per_second; do
        printf '%-9s %-9s %-9.1f %-9s %s\n' "$task" "$n" "$seconds" "$per_second" pytorch
    done
else
    echo "($python cannot import torch: no PyTorch comparison)"
fi
