#!/usr/bin/env bash
# Inference speed of the pretrained EfficientNet-Lite0 on this machine's CPU: the wall time of
# `infer PHOTO` (weights cached, release build) and the throughput of one batch of N copies.
#   scripts/bench-infer.sh [PHOTO] [N]
set -euo pipefail
cd "$(dirname "$0")/.."
photo=${1:-../shared/images/koala.jpg}
n=${2:-64}
cargo build --release -q -p infer
infer=target/release/infer
"$infer" --fetch-weights >/dev/null
"$infer" "$photo" >/dev/null # warm the page cache

echo "== infer $photo (5 runs)"
for _ in 1 2 3 4 5; do
    /usr/bin/time -f "%e s wall, %M KiB peak" "$infer" "$photo" 2>&1 >/dev/null | tail -1
done

echo "== one batch of $n copies at 224x224"
copies=$(mktemp -d)
trap 'rm -rf "$copies"' EXIT
for i in $(seq 1 "$n"); do ln -s "$(realpath "$photo")" "$copies/$i.jpg"; done
start=$(date +%s.%N)
"$infer" "$copies"/*.jpg >/dev/null
end=$(date +%s.%N)
echo "$n images in $(echo "$end - $start" | bc) s: $(echo "$n / ($end - $start)" | bc -l | cut -c1-6) images/s (decoding and loading included)"
