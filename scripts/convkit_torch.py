"""The networks `train` saves, as PyTorch modules whose state-dict keys are the ones
`train export RUN_DIR --safetensors FILE` writes: convnet, fastnet, airnet and
efficientnet_lite0/1/2.

    python scripts/convkit_torch.py RUN_DIR FILE.safetensors
        loads the export, checks every key, prints the classes and the input it expects
    python scripts/convkit_torch.py RUN_DIR FILE.safetensors --input X.f32 --output Y.f32
        also runs the network on raw little-endian float32 inputs [n, 3, side, side] (already
        normalized as model.json says) and writes the logits [n, classes] the same way

In Python: `model, manifest = load(run_dir, file)`, then `model(normalize(manifest, images))`
for RGB images as a uint8 tensor [n, 3, side, side] (resized to manifest["image_size"]): the
pixel values 0-255 scaled as model.json says (per pixel and channel with the training split's
mean and standard deviation for networks trained from scratch, (x - 127) / 128 for
EfficientNet-Lite).
"""

import argparse
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lite_reference import VARIANTS, stages  # noqa: E402


class ConvNet(nn.Module):
    """crates/models/src/convnet.rs: the tutorial's convnet, no padding anywhere."""

    def __init__(self, classes, side):
        super().__init__()
        final = ((side - 4) // 2) - 8
        self.conv2d_1, self.conv2d_2 = nn.Conv2d(3, 32, 3), nn.Conv2d(32, 32, 3)
        self.conv2d_3, self.conv2d_4 = nn.Conv2d(32, 64, 5), nn.Conv2d(64, 64, 5)
        self.fc1 = nn.Linear(64 * final * final, 1024)
        self.fc2 = nn.Linear(1024, 1024)
        self.predictions = nn.Linear(1024, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2d_2(F.relu(self.conv2d_1(x)))), 2)
        x = F.relu(self.conv2d_4(F.relu(self.conv2d_3(x))))
        x = F.relu(self.fc2(F.relu(self.fc1(x.flatten(1)))))
        return self.predictions(x)


class ConvBn(nn.Module):
    def __init__(self, c_in, c_out, kernel=3, stride=1, groups=1, eps=1e-5, same=False):
        super().__init__()
        padding = 0 if same else kernel // 2
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=eps)
        self.same = same

    def forward(self, x):
        if self.same:  # TensorFlow's 'SAME': the extra padding, if odd, at the bottom right
            k, s = self.conv.kernel_size[0], self.conv.stride[0]
            pad = max(k - s if x.shape[2] % s == 0 else k - x.shape[2] % s, 0)
            x = F.pad(x, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2))
        return self.bn(self.conv(x))


class Block(nn.Module):
    def __init__(self, c_in, c_out, eps=1e-5):
        super().__init__()
        self.first, self.second = ConvBn(c_in, c_out, eps=eps), ConvBn(c_out, c_out, eps=eps)

    def forward(self, x, activation=F.relu):
        x = activation(self.first.bn(F.max_pool2d(self.first.conv(x), 2)))
        return activation(self.second(x))


class FastNet(nn.Module):
    """crates/models/src/fastnet.rs: stem, three blocks (conv, pool, BN, ReLU, conv, BN, ReLU),
    global max pooling, one dense layer."""

    def __init__(self, classes, widths):
        super().__init__()
        self.stem = ConvBn(3, widths[0])
        self.blocks = nn.ModuleList([Block(widths[i], widths[i + 1]) for i in range(3)])
        self.fc = nn.Linear(widths[3], classes)

    def forward(self, x):
        x = F.relu(self.stem(x))
        for block in self.blocks:
            x = block(x)
        return self.fc(x.amax((2, 3)))


class Whitening(nn.Module):
    """airnet's stem: fixed k x k whitening filters and a bias."""

    def __init__(self, kernel):
        super().__init__()
        self.conv = nn.Conv2d(3, 2 * 3 * kernel * kernel, kernel, bias=False)
        self.bias = nn.Parameter(torch.zeros(2 * 3 * kernel * kernel))

    def forward(self, x):
        return self.conv(x) + self.bias.view(1, -1, 1, 1)


class AirNet(nn.Module):
    """crates/models/src/airnet.rs, airbench94's network: the whitening stem, three blocks as
    fastnet's with its activation (GELU or ReLU), global max pooling, a bias-free dense layer,
    the logits scaled."""

    def __init__(self, classes, spec):
        super().__init__()
        kernel, widths = spec.get("whiten_kernel", 2), spec.get("widths", [64, 256, 256])
        eps = spec.get("batch_norm_epsilon", 1e-12)
        self.activation = F.gelu if spec.get("activation", "gelu") == "gelu" else F.relu
        self.stem = Whitening(kernel)
        channels = [2 * 3 * kernel * kernel] + widths
        self.blocks = nn.ModuleList(
            [Block(channels[i], channels[i + 1], eps) for i in range(3)]
        )
        self.fc = nn.Linear(widths[2], classes, bias=False)
        self.logit_scale = spec.get("logit_scale", 1 / 9)

    def forward(self, x):
        x = self.activation(self.stem(x))
        for block in self.blocks:
            x = block(x, self.activation)
        return self.fc(x.amax((2, 3))) * self.logit_scale


class MbConv(nn.Module):
    def __init__(self, c_in, c_out, kernel, stride, expand):
        super().__init__()
        hidden = c_in * expand
        same = dict(eps=1e-3, same=True)
        self.expand = ConvBn(c_in, hidden, 1, **same) if expand != 1 else None
        self.depthwise = ConvBn(hidden, hidden, kernel, stride, hidden, **same)
        self.project = ConvBn(hidden, c_out, 1, **same)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        y = F.relu6(self.expand(x)) if self.expand is not None else x
        y = self.project(F.relu6(self.depthwise(y)))
        return x + y if self.residual else y


class Backbone(nn.Module):
    def __init__(self, variant):
        super().__init__()
        width, depth, _ = VARIANTS[variant]
        self.stem = ConvBn(3, 32, 3, 2, eps=1e-3, same=True)
        blocks, c_in = [], 32
        for repeats, kernel, stride, expand, channels in stages(width, depth):
            for r in range(repeats):
                blocks.append(MbConv(c_in, channels, kernel, stride if r == 0 else 1, expand))
                c_in = channels
        self.blocks = nn.ModuleList(blocks)
        self.head = ConvBn(c_in, 1280, 1, eps=1e-3, same=True)

    def forward(self, x):
        x = F.relu6(self.stem(x))
        for block in self.blocks:
            x = block(x)
        return F.relu6(self.head(x)).mean((2, 3))


class Head(nn.Module):
    def __init__(self, classes, hidden_units):
        super().__init__()
        self.hidden = nn.Linear(1280, hidden_units) if hidden_units else None
        self.fc = nn.Linear(hidden_units or 1280, classes)

    def forward(self, x):
        if self.hidden is not None:
            x = F.relu(self.hidden(x))
        return self.fc(x)


class EfficientNetLite(nn.Module):
    """crates/models/src/efficientnet.rs: the backbone and the classifier head."""

    def __init__(self, variant, classes, hidden_units):
        super().__init__()
        self.backbone = Backbone(variant)
        self.head = Head(classes, hidden_units)

    def forward(self, x):
        return self.head(self.backbone(x))


def build(manifest):
    """The module model.json describes, with fresh weights."""
    architecture, classes = manifest["architecture"], len(manifest["classes"])
    name = architecture["name"]
    if name == "convnet":
        return ConvNet(classes, manifest["image_size"])
    if name == "fastnet":
        return FastNet(classes, architecture.get("widths", [32, 64, 128, 256]))
    if name == "airnet":
        return AirNet(classes, architecture)
    if name.startswith("efficientnet_lite"):
        return EfficientNetLite(int(name[-1]), classes, architecture.get("hidden_units", 0))
    raise SystemExit(f"model.json names {name!r}, which this script does not know")


def normalize(manifest, images):
    """uint8 images [n, 3, side, side] as the network takes them."""
    x = images.float()
    scaling = manifest["normalization"]
    if scaling["kind"] == "per_pixel":
        shape = x.shape[1:]
        mean = torch.tensor(scaling["mean"]).reshape(shape)
        std = torch.tensor(scaling["std"]).reshape(shape)
        return (x - mean) / std
    return (x - scaling["offset"]) / scaling["scale"]


def load(run_dir, safetensors):
    """The run's network with the exported weights, in evaluation mode, and its manifest."""
    with open(os.path.join(run_dir, "model.json")) as f:
        manifest = json.load(f)
    from safetensors.torch import load_file

    model = build(manifest)
    state = load_file(safetensors)
    model.load_state_dict(state, strict=True)
    return model.eval(), manifest


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("safetensors")
    parser.add_argument("--input", help="raw float32 inputs [n, 3, side, side]")
    parser.add_argument("--output", help="where the raw float32 logits go")
    args = parser.parse_args()
    model, manifest = load(args.run_dir, args.safetensors)
    side = manifest["image_size"]
    params = sum(p.numel() for p in model.parameters())
    print(f"{manifest['architecture']['name']}: {params} parameters, input [n, 3, {side}, {side}], "
          f"classes {manifest['classes']}")
    if args.input:
        data = torch.frombuffer(bytearray(open(args.input, "rb").read()), dtype=torch.float32)
        images = data.reshape(-1, 3, side, side)
        with torch.no_grad():
            logits = model(images).contiguous()
        with open(args.output, "wb") as f:
            f.write(logits.numpy().astype("<f4").tobytes())


if __name__ == "__main__":
    main()
