"""The other side of scripts/bench-cpu.sh: training and inference speed of the same networks on
random images with Adam, in PyTorch or in Keras (TensorFlow backend), on the CPU.

    python3 cpu_bench.py torch|keras convnet|keras_cnn|fastnet|airnet|lite0 STEPS TRAIN_BATCH INFER_BATCH

Prints lines like the project's `throughput` example: images/s, and the process's peak memory.
PRECISION=bfloat16 runs each system's mixed precision, as `matmul_precision = "bfloat16"` runs
ours: PyTorch's autocast to bfloat16 on the CPU, Keras' "mixed_bfloat16" policy (weights f32).
Ten untimed steps of each come first, as in `throughput`. fastnet is the network of the
tutorial-era fast recipe (fixed 3x3 whitening stem, widths 32/64/128/256, ReLU), airnet
airbench94's network as the fast recipe ships it (fixed 2x2 whitening stem of 24, blocks of
64/256/256, GELU, BatchNorm without scale, a bias-free dense layer).
"""

import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

BFLOAT16 = os.environ.get("PRECISION", "float32") == "bfloat16"


def images(batch, side):
    rng = np.random.default_rng(0)
    return rng.standard_normal((batch, 3, side, side), dtype=np.float32), np.arange(batch) % 10


def torch_bench(name, steps, train_batch, infer_batch, side):
    import torch
    import torch.nn.functional as F
    from convkit_torch import AirNet, FastNet
    from torch_nets import ConvNet, KerasCnn, Lite0

    def fastnet(widths):
        net = FastNet(10, widths)
        net.stem.conv.weight.requires_grad_(False)  # the whitening filters are fixed
        return net

    def airnet():
        net = AirNet(10, {})
        net.stem.conv.weight.requires_grad_(False)  # the whitening filters are fixed
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.requires_grad_(False)  # BatchNorm's scale stays 1
        return net

    model = {
        "convnet": ConvNet,
        "keras_cnn": KerasCnn,
        "lite0": Lite0,
        "fastnet": lambda: fastnet([32, 64, 128, 256]),
        "airnet": airnet,
    }[name]()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    x, y = (torch.from_numpy(a) for a in images(train_batch, side))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=BFLOAT16):
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    model.train()
    train = timed(step, steps, train_batch)
    model.eval()
    x = torch.from_numpy(images(infer_batch, side)[0])
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=BFLOAT16):
        infer = timed(lambda: model(x).float().numpy(), steps, infer_batch)
    return train, infer, (
        f"pytorch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{torch.backends.cpu.get_cpu_capability()}"
        + (", autocast to bfloat16" if BFLOAT16 else "")
    )


def keras_model(name, side):
    import keras
    from keras import layers

    inputs = keras.Input((side, side, 3))
    if name == "convnet":
        x = inputs
        for filters, kernel in ((32, 3), (32, 3)):
            x = layers.Conv2D(filters, kernel, activation="relu")(x)
        x = layers.MaxPooling2D()(x)
        for filters, kernel in ((64, 5), (64, 5)):
            x = layers.Conv2D(filters, kernel, activation="relu")(x)
        x = layers.Flatten()(x)
        x = layers.Dense(1024, activation="relu")(x)
        x = layers.Dense(1024, activation="relu")(x)
    elif name in ("fastnet", "airnet"):
        air = name == "airnet"
        widths = [64, 256, 256] if air else [64, 128, 256]
        activation = layers.Activation("gelu") if air else layers.ReLU()

        def norm(x):
            if air:  # airbench's: no scale, PyTorch's momentum 0.4
                return layers.BatchNormalization(momentum=0.6, epsilon=1e-12, scale=False)(x)
            return layers.BatchNormalization()(x)

        if air:
            x = activation(layers.Conv2D(24, 2, trainable=False)(inputs))
        else:
            x = layers.Conv2D(32, 3, padding="same", use_bias=False, trainable=False)(inputs)
            x = activation(norm(x))
        for width in widths:
            x = layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
            x = activation(norm(layers.MaxPooling2D()(x)))
            x = layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
            x = activation(norm(x))
        x = layers.GlobalMaxPooling2D()(x)
        return keras.Model(inputs, layers.Dense(10, use_bias=not air)(x))
    elif name == "keras_cnn":
        x = inputs
        for filters in (32, 64):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
            x = layers.Conv2D(filters, 3, activation="relu")(x)
            x = layers.Dropout(0.25)(layers.MaxPooling2D()(x))
        x = layers.Dense(512, activation="relu")(layers.Flatten()(x))
        x = layers.Dropout(0.5)(x)
    else:
        from lite0_torch import STAGES

        def conv_bn(x, filters, kernel, stride=1, depthwise=False):
            if depthwise:
                x = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False)(x)
            else:
                x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False)(x)
            return layers.BatchNormalization(epsilon=1e-3)(x)

        x = layers.ReLU(6.0)(conv_bn(inputs, 32, 3, 2))
        for repeats, kernel, stride, expand, channels in STAGES:
            for r in range(repeats):
                block_in, s = x, stride if r == 0 else 1
                if expand != 1:
                    x = layers.ReLU(6.0)(conv_bn(x, x.shape[-1] * expand, 1))
                x = layers.ReLU(6.0)(conv_bn(x, None, kernel, s, depthwise=True))
                x = conv_bn(x, channels, 1)
                if s == 1 and block_in.shape[-1] == channels:
                    x = layers.Add()([block_in, x])
        x = layers.ReLU(6.0)(conv_bn(x, 1280, 1))
        x = layers.Dropout(0.2)(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, layers.Dense(10)(x))


def keras_bench(name, steps, train_batch, infer_batch, side):
    import keras
    import tensorflow as tf

    if BFLOAT16:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = keras_model(name, side)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x, y = images(train_batch, side)
    x = x.transpose(0, 2, 3, 1).copy()
    train = timed(lambda: model.train_on_batch(x, y), steps, train_batch)
    x = images(infer_batch, side)[0].transpose(0, 2, 3, 1).copy()
    infer = timed(lambda: model.predict_on_batch(x), steps, infer_batch)
    return train, infer, (
        f"keras {keras.__version__} / tensorflow {tf.__version__}, "
        f"oneDNN at most {os.environ.get('ONEDNN_MAX_CPU_ISA', 'what the CPU has')}"
        + (", mixed_bfloat16 policy" if BFLOAT16 else "")
    )


WARM_UP = 10


def timed(step, steps, batch):
    for _ in range(WARM_UP):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start)


def main():
    framework, name = sys.argv[1], sys.argv[2]
    steps, train_batch, infer_batch = (int(a) for a in sys.argv[3:6])
    side = 224 if name == "lite0" else 32
    bench = {"torch": torch_bench, "keras": keras_bench}[framework]
    train, infer, system = bench(name, steps, train_batch, infer_batch, side)
    print(f"{name} on {system}")
    print(f"train {train:.1f} images/s (batch {train_batch}), inference {infer:.1f} images/s (batch {infer_batch})")
    # Linux reports the peak resident set in KiB.
    print(f"peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
