#!/usr/bin/env bash
# CPU training and inference speed of the project (Burn, the default CPU backend) beside PyTorch
# and Keras/TensorFlow doing the same work: the tutorial's convnet, the Keras cifar10_cnn
# example's network, the fast recipe's fastnet as shipped (whitened stem, BatchNorm,
# 32/64/128/256) (all 32x32, training batches of 128, inference batches of 256), fastnet at
# airbench94's widths 24/64/256/256 (batches of 1024) and EfficientNet-Lite0 at 224x224 (batches
# of 16 and 32), random images, Adam, fp32. Each round runs the three systems one after the other
# (interleaved, as this machine is shared and noisy); the median of the rounds is printed, with
# burn's speed as a ratio of each other's, the GFLOP/s each system achieves (2 FLOP per
# multiply-add of the network as `train --summary` counts them; training counts 3 passes) and
# Burn's share of the machine's practical fp32 peak (the best of five 2048³ matrix products,
# measured in the same run); then each system's peak memory per network (its whole process).
#   scripts/bench-cpu.sh [ROUNDS]
# MODELS="lite0 fastnet" runs only those networks' rows (default: all five).
# ISA=avx2 measures every system without AVX-512 on a CPU that has it: ours built with
# RUSTFLAGS="--cfg convkit_avx2" (into target/avx2: our kernels and gemm's matrix products on
# AVX2; Flex's elementwise operations, through macerator, still pick AVX-512 at run time),
# PyTorch with ATEN_CPU_CAPABILITY=avx2, oneDNN (PyTorch's and TensorFlow's) and MKL capped at AVX2.
# PRECISION=bfloat16 measures each system's mixed precision where the CPU has bfloat16 products:
# ours with MATMUL_PRECISION=bfloat16 (every convolution but the depthwise ones as products on
# AMX tiles; see matmul_precision in configs/cifar.toml), PyTorch under autocast to bfloat16,
# Keras with the "mixed_bfloat16" policy; the fp32 peak stays the reference of the share column.
# PyTorch, TensorFlow (Keras 3), numpy and pillow are installed from PyPI into target/bench-venv
# (about 4 GB) unless PYTHON names an interpreter that has them.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
all=("convnet 10 128 256" "keras_cnn 10 128 256" "fastnet 10 128 256" "airnet 3 1024 1024" "lite0 3 16 32")
benches=()
for bench in "${all[@]}"; do
    if [ -z "${MODELS:-}" ] || [[ " $MODELS " == *" ${bench%% *} "* ]]; then benches+=("$bench"); fi
done
if [ ${#benches[@]} -eq 0 ]; then
    echo "bench-cpu: MODELS=\"$MODELS\" names none of convnet, keras_cnn, fastnet, airnet, lite0" >&2
    exit 1
fi
if [ -z "${PYTHON:-}" ]; then
    if [ ! -x target/bench-venv/bin/python ] || ! target/bench-venv/bin/python -c 'import torch, tensorflow' 2>/dev/null; then
        python3 -m venv target/bench-venv
        target/bench-venv/bin/pip install -q torch tensorflow-cpu numpy pillow
    fi
    PYTHON=target/bench-venv/bin/python
fi
if ! "$PYTHON" -c 'import torch, tensorflow, numpy, PIL' 2>/dev/null; then
    echo "bench-cpu: $PYTHON lacks torch, tensorflow, numpy or pillow; install them (pip install torch tensorflow-cpu numpy pillow) or unset PYTHON" >&2
    exit 1
fi
case "${ISA:-}" in
    "") ;;
    avx2)
        export RUSTFLAGS="${RUSTFLAGS:-} --cfg convkit_avx2" CARGO_TARGET_DIR=target/avx2
        export ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
        ;;
    *)
        echo "bench-cpu: ISA=\"$ISA\" is not one this script knows; use ISA=avx2 or leave it unset" >&2
        exit 1
        ;;
esac
case "${PRECISION:-float32}" in
    float32) ;;
    bfloat16) export MATMUL_PRECISION=bfloat16 ;;
    *)
        echo "bench-cpu: PRECISION=\"$PRECISION\" is not one this script knows; use PRECISION=bfloat16 or leave it unset" >&2
        exit 1
        ;;
esac
export PRECISION=${PRECISION:-float32}
cargo build --release -q -p train --example throughput
throughput=${CARGO_TARGET_DIR:-target}/release/examples/throughput
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# model steps train_batch infer_batch
for round in $(seq 1 "$rounds"); do
    "$throughput" peak >"$out/peak-$round"
    for bench in "${benches[@]}"; do
        read -r model steps train_batch infer_batch <<<"$bench"
        "$throughput" "$model" "$steps" "$train_batch" "$infer_batch" >"$out/burn-$model-$round"
        for framework in torch keras; do
            "$PYTHON" scripts/cpu_bench.py "$framework" "$model" "$steps" "$train_batch" "$infer_batch" \
                >"$out/$framework-$model-$round" 2>/dev/null
        done
        echo "round $round/$rounds: $model done" >&2
    done
done

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# The images/s of one system, model and phase ("train" or "inference"), median over rounds.
speed() { cat "$out/$1-$2-"* | sed -n "s/.*$3 \([0-9.]*\) images\/s.*/\1/p" | median; }
# The most memory one system's process held for a model, over rounds.
memory() { cat "$out/$1-$2-"* | sed -n 's/^peak memory \([0-9.]*\) MiB/\1/p' | sort -g | tail -1; }
peak=$(cat "$out"/peak-* | sed -n 's/.*: \([0-9.]*\) GFLOP\/s/\1/p' | median)
lscpu | sed -n 's/^Model name: *//p'
first=${benches[0]%% *}
for system in burn torch keras; do head -1 "$out/$system-$first-1" | sed "s/^$first on /  /"; done
printf 'practical fp32 peak (2048^3 matrix product, 2 threads): %.1f GFLOP/s\n' "$peak"
printf '%-10s %-10s %9s %9s %9s %7s %7s %22s %8s\n' model phase burn pytorch keras b/pt b/keras "GFLOP/s burn/pt/keras" "of peak"
for bench in "${benches[@]}"; do
    read -r model _ <<<"$bench"
    macs=$(sed -n 's/^macs //p' "$out/burn-$model-1")
    for phase in train inference; do
        b=$(speed burn "$model" "$phase")
        t=$(speed torch "$model" "$phase")
        k=$(speed keras "$model" "$phase")
        passes=$([ "$phase" = train ] && echo 3 || echo 1)
        gflops() { echo "2 * $macs * $passes * $1 / 1000000000" | bc -l; }
        printf '%-10s %-10s %9.1f %9.1f %9.1f %7.2f %7.2f %8.0f/%4.0f/%4.0f %7.0f%%\n' "$model" "$phase" "$b" "$t" "$k" \
            "$(echo "$b / $t" | bc -l)" "$(echo "$b / $k" | bc -l)" \
            "$(gflops "$b")" "$(gflops "$t")" "$(gflops "$k")" "$(echo "100 * $(gflops "$b") / $peak" | bc -l)"
    done
done
printf '\npeak memory (MiB, the whole process: one network trained, then run)\n%-10s %9s %9s %9s\n' model burn pytorch keras
for bench in "${benches[@]}"; do
    read -r model _ <<<"$bench"
    printf '%-10s %9.0f %9.0f %9.0f\n' "$model" "$(memory burn "$model")" "$(memory torch "$model")" "$(memory keras "$model")"
done
