"""EfficientNet-Lite0 in PyTorch with the same weights, for side-by-side timings of `infer`.

    python3 scripts/lite0_torch.py WEIGHTS.pth PHOTO [N]

Classifies PHOTO like `infer` (shorter side to 256, bilinear; centre crop 224; (x - 127) / 128;
TensorFlow 'SAME' padding) and prints its top-3, then decodes and classifies N copies of it as one
batch and prints images/s. Needs torch, numpy and pillow.
"""

import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

STAGES = [  # repeats, kernel, stride, expand, channels
    (1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320),
]


def conv_same(x, w, stride=1, groups=1):
    k = w.shape[-1]
    pads = []
    for size in (x.shape[3], x.shape[2]):
        out = -(-size // stride)
        total = max((out - 1) * stride + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.conv2d(F.pad(x, pads), w, stride=stride, groups=groups)


def bn(x, t, p):
    return F.batch_norm(x, t[p + ".running_mean"], t[p + ".running_var"], t[p + ".weight"], t[p + ".bias"], False, 0.0, 1e-3)


def features(t, x):
    """The pooled features, the classifier's input: [n, 1280]."""
    x = F.relu6(bn(conv_same(x, t["_conv_stem.weight"], 2), t, "_bn0"))
    block = 0
    for repeats, _, stride, expand, _ in STAGES:
        for r in range(repeats):
            p, s, inputs = f"_blocks.{block}.", stride if r == 0 else 1, x
            if expand != 1:
                x = F.relu6(bn(conv_same(x, t[p + "_expand_conv.weight"]), t, p + "_bn0"))
            x = F.relu6(bn(conv_same(x, t[p + "_depthwise_conv.weight"], s, x.shape[1]), t, p + "_bn1"))
            x = bn(conv_same(x, t[p + "_project_conv.weight"]), t, p + "_bn2")
            if s == 1 and x.shape == inputs.shape:
                x = x + inputs
            block += 1
    x = F.relu6(bn(conv_same(x, t["_conv_head.weight"]), t, "_bn1"))
    return x.mean((2, 3))


def forward(t, x):
    return F.linear(features(t, x), t["_fc.weight"], t["_fc.bias"])


def preprocess(path):
    image = Image.open(path).convert("RGB")
    w, h = image.size
    scale = 256 / min(w, h)
    image = image.resize((max(224, int(w * scale)), max(224, int(h * scale))), Image.BILINEAR)
    w, h = image.size
    left, top = (w - 224) // 2, (h - 224) // 2
    image = image.crop((left, top, left + 224, top + 224))
    return (torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1) - 127.0) / 128.0


def main():
    weights, photo = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    t = {k: v.float() for k, v in torch.load(weights, map_location="cpu").items()}
    with torch.inference_mode():
        probabilities = forward(t, preprocess(photo)[None]).softmax(1)[0]
        top = probabilities.topk(3)
        print("top-3", [(int(i), round(float(p) * 100, 2)) for p, i in zip(top.values, top.indices)])
        start = time.perf_counter()
        batch = torch.stack([preprocess(photo) for _ in range(n)])
        forward(t, batch)
        seconds = time.perf_counter() - start
    print(f"{n} images in {seconds:.3f} s: {n / seconds:.2f} images/s (decoding included), {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
