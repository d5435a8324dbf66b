"""Independent EfficientNet-Lite0/1/2 reference in plain numpy, for the golden tests.

Reads the legacy-format PyTorch checkpoint itself (no torch), runs the network on a fixed
synthetic input at the variant's resolution with TensorFlow 'SAME' padding, and writes the 1000
logits as JSON:

    python3 scripts/lite_reference.py 0 efficientnet-lite0-57934424.pth lite0-logits.json
    python3 scripts/lite_reference.py 1 efficientnet-lite1-77cc7160.pth lite1-logits.json
    python3 scripts/lite_reference.py 2 efficientnet-lite2-9656183e.pth lite2-logits.json

`crates/infer/tests/golden.rs` builds the same input and compares Burn's logits with these.
"""

import json
import math
import pickle
import struct
import sys

import numpy as np

B0_STAGES = [  # repeats, kernel, stride, expand, channels
    (1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320),
]
# variant: (width coefficient, depth coefficient, resolution), as the Lite models set them.
VARIANTS = {0: (1.0, 1.0, 224), 1: (1.0, 1.1, 240), 2: (1.1, 1.2, 260)}
EPS = 1e-3


def round_filters(channels, width, divisor=8):
    """TensorFlow's round_filters: to the nearest multiple of 8, up one if that lost over 10%."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def stages(width, depth):
    """B0's table scaled; the Lite models keep the first and last stages' repeats fixed."""
    last = len(B0_STAGES) - 1
    return [
        (repeats if i in (0, last) else math.ceil(repeats * depth), kernel, stride, expand,
         round_filters(channels, width))
        for i, (repeats, kernel, stride, expand, channels) in enumerate(B0_STAGES)
    ]


def load_legacy_pth(path):
    """A torch.save file from before the zip format: pickles, then raw storages."""
    storages = {}

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if name == "_rebuild_tensor_v2":
                return lambda storage, offset, size, stride, *rest: ("tensor", storage, offset, size, stride)
            if module == "collections" and name == "OrderedDict":
                import collections
                return collections.OrderedDict
            if module.startswith("torch"):
                return name  # storage types, e.g. "FloatStorage"
            return super().find_class(module, name)

        def persistent_load(self, pid):
            _, storage_type, key, _location, size = pid[:5]
            storages.setdefault(key, (storage_type, size))
            return key

    with open(path, "rb") as f:
        for _ in range(3):  # magic number, protocol version, system info
            pickle.load(f)
        state = Unpickler(f).load()
        keys = pickle.load(f)
        data = {}
        for key in keys:
            (count,) = struct.unpack("<q", f.read(8))
            storage_type, _ = storages[key]
            dtype = {"FloatStorage": "<f4", "LongStorage": "<i8"}[storage_type]
            data[key] = np.frombuffer(f.read(np.dtype(dtype).itemsize * count), dtype=dtype)
    tensors = {}
    for name, value in state.items():
        _, key, offset, size, stride = value
        flat = data[key]
        if len(size) == 0:
            tensors[name] = flat[offset]
            continue
        itemsize = flat.itemsize
        tensors[name] = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=size, strides=[s * itemsize for s in stride]).copy()
    return tensors


def same_pad(x, kernel, stride):
    """TensorFlow 'SAME': the odd extra pixel goes to the bottom and right."""
    _, h, w = x.shape
    pads = []
    for size in (h, w):
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, ((0, 0), pads[0], pads[1]))


def conv(x, weight, stride=1, groups=1):
    """x: [C, H, W]; weight: [O, C/groups, k, k]."""
    out_channels, _, k, _ = weight.shape
    x = same_pad(x, k, stride)
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride]
    if groups == 1:
        return np.einsum("chwij,ocij->ohw", windows, weight, optimize=True)
    assert groups == x.shape[0] == out_channels
    return np.einsum("chwij,cij->chw", windows, weight[:, 0], optimize=True)


def bn(x, t, prefix):
    scale = t[prefix + ".weight"] / np.sqrt(t[prefix + ".running_var"] + EPS)
    shift = t[prefix + ".bias"] - t[prefix + ".running_mean"] * scale
    return x * scale[:, None, None] + shift[:, None, None]


def relu6(x):
    return np.clip(x, 0.0, 6.0)


def forward(t, x, table):
    x = relu6(bn(conv(x, t["_conv_stem.weight"], 2), t, "_bn0"))
    block = 0
    for repeats, kernel, stride, expand, channels in table:
        for r in range(repeats):
            p = f"_blocks.{block}."
            inputs = x
            if expand != 1:
                x = relu6(bn(conv(x, t[p + "_expand_conv.weight"]), t, p + "_bn0"))
            x = relu6(bn(conv(x, t[p + "_depthwise_conv.weight"], stride if r == 0 else 1, groups=x.shape[0]), t, p + "_bn1"))
            x = bn(conv(x, t[p + "_project_conv.weight"]), t, p + "_bn2")
            assert x.shape[0] == channels, (p, x.shape, channels)
            if (stride if r == 0 else 1) == 1 and x.shape == inputs.shape:
                x = x + inputs
            block += 1
    x = relu6(bn(conv(x, t["_conv_head.weight"]), t, "_bn1"))
    features = x.mean(axis=(1, 2))
    return t["_fc.weight"] @ features + t["_fc.bias"]


def golden_input(side):
    """The fixed input, already normalized: the same formula as the Rust test."""
    c, h, w = np.meshgrid(np.arange(3), np.arange(side), np.arange(side), indexing="ij")
    return (np.sin(0.05 * (h + 1) * (c + 1)) * np.cos(0.031 * (w + 3 * c))).astype(np.float64)


def main():
    variant, weights, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    width, depth, side = VARIANTS[variant]
    tensors = {k: np.asarray(v, dtype=np.float64) for k, v in load_legacy_pth(weights).items()
               if not k.endswith("num_batches_tracked")}
    logits = forward(tensors, golden_input(side), stages(width, depth))
    with open(out, "w") as f:
        json.dump({"input": f"sin(0.05*(h+1)*(c+1)) * cos(0.031*(w+3c)), 3x{side}x{side}",
                   "logits": logits.tolist()}, f)
    top = np.argsort(-logits)[:3]
    print("top-3 indices", top.tolist(), "logits", logits[top].round(4).tolist())


if __name__ == "__main__":
    main()
