#!/usr/bin/env bash
# Inference speed of the pretrained EfficientNet-Lite0 on this machine's CPU, beside PyTorch doing
# the same work (scripts/lite0_torch.py: same weights, same preprocessing), interleaved:
#  - the wall time of classifying one photo, whole process (weights cached, release build);
#  - the throughput of decoding and classifying one batch of N copies at 224x224.
#   scripts/bench-infer.sh [PHOTO] [N]
# PyTorch, numpy and pillow are installed from PyPI into target/bench-venv (about 3 GB) unless
# PYTHON names an interpreter that has them.
set -euo pipefail
cd "$(dirname "$0")/.."
photo=${1:-../shared/images/koala.jpg}
n=${2:-64}
cargo build --release -q -p infer
infer=target/release/infer
weights=$("$infer" --fetch-weights | sed -n 's/^weights ready at //p')
if [ -z "${PYTHON:-}" ]; then
    if [ ! -x target/bench-venv/bin/python ]; then
        python3 -m venv target/bench-venv
        target/bench-venv/bin/pip install -q torch numpy pillow
    fi
    PYTHON=target/bench-venv/bin/python
fi
copies=$(mktemp -d)
trap 'rm -rf "$copies"' EXIT
for i in $(seq 1 "$n"); do ln -s "$(realpath "$photo")" "$copies/$i.jpg"; done
seconds() { local start end; start=$(date +%s.%N); "$@" >/dev/null 2>&1; end=$(date +%s.%N); echo "$end - $start" | bc; }

"$infer" "$photo"
"$PYTHON" scripts/lite0_torch.py "$weights" "$photo" 1 | sed -n 1p
echo "== one photo, whole process: seconds per run (burn, pytorch), interleaved"
for _ in 1 2 3 4 5; do
    echo "$(seconds "$infer" "$photo") $(seconds "$PYTHON" scripts/lite0_torch.py "$weights" "$photo" 1)"
done
echo "== one batch of $n copies at 224x224, decoding included: images/s (burn, pytorch), interleaved"
for _ in 1 2 3; do
    burn=$(seconds "$infer" "$copies"/*.jpg)
    torch=$("$PYTHON" scripts/lite0_torch.py "$weights" "$photo" "$n" | sed -n 's/.*s: \([0-9.]*\) images.*/\1/p')
    echo "$(echo "$n / $burn" | bc -l | cut -c1-6) $torch"
done
