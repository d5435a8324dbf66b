"""airbench94's training in PyTorch on the CPU, on the images `train` reads: the reference that
configs/cifar-airbench.toml is measured against, side by side (scripts/bench-fast.sh with
REFERENCE=1).

    python scripts/airbench_torch.py DATA [--seed 42] [--epochs 9.9] [--valid 5000]

DATA: a .tar.gz of class folders of images (`<any>/<class>/<name>.jpg|png`), as the developers'
CIFAR-10 JPEG copy. `--valid` images, drawn with the seed, are held out and evaluated after every
epoch; the rest train. The network is scripts/convkit_torch.py's AirNet (crates/models/src/airnet.rs
layer for layer), trained as airbench94 trains it (Keller Jordan, arXiv 2404.00498): inputs
normalized per channel; whitening filters from the 2x2 patches of 5,000 training images; batches of
1,024 (the last partial one dropped); Nesterov SGD at 11.5 and 0.0153 per 1,024 examples, momentum
0.85, BatchNorm's shifts at 64 times the rate; label smoothing 0.2; the triangle schedule (0.2 of
the rate, all of it at 23% of the steps, 0.07 at the end); from the fourth epoch Lookahead every 5
steps; the stem's bias trained for 3 epochs; alternating flips and 2-pixel translations (reflected);
6 test-time views. One line per epoch, then one row in bench-fast.sh's columns (seconds since the
script started).
"""

import argparse
import io
import math
import os
import sys
import tarfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convkit_torch import AirNet  # noqa: E402

LR, WEIGHT_DECAY, MOMENTUM, BIAS_SCALE = 11.5, 0.0153, 0.85, 64.0
BATCH, LABEL_SMOOTHING, WHITEN_BIAS_EPOCHS = 1024, 0.2, 3
LOOKAHEAD_FROM_EPOCH, LOOKAHEAD_EVERY, LOOKAHEAD_DECAY = 3, 5, 0.95**5


def read_images(path):
    """uint8 images [n, 3, h, w] and labels, classes in sorted folder order."""
    files = []
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.lower().endswith((".jpg", ".jpeg", ".png")):
                files.append((member.name, tar.extractfile(member).read()))
    files.sort()
    classes = sorted({name.split("/")[-2] for name, _ in files})
    images = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for _, b in files])
    labels = [classes.index(name.split("/")[-2]) for name, _ in files]
    return torch.tensor(images).permute(0, 3, 1, 2), torch.tensor(labels), len(classes)


def multiply_adds(model, side):
    """Multiply-adds of one forward pass of one side x side image."""
    total = 0

    def count(module, _, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total += output.numel() * module.in_channels // module.groups * k
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in model.modules()]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, side, side))
    for hook in hooks:
        hook.remove()
    return total


def whiten(stem, images, eps=5e-4):
    """The stem's filters: each principal direction of the images' patches over the square root
    of its variance (plus eps), and its negation."""
    k = stem.conv.kernel_size[0]
    patches = images.unfold(2, k, 1).unfold(3, k, 1).transpose(1, 3).reshape(-1, 3 * k * k).double()
    eigenvalues, eigenvectors = torch.linalg.eigh(patches.T @ patches / len(patches))
    order = eigenvalues.argsort(descending=True)
    filters = (eigenvectors[:, order] / torch.sqrt(eigenvalues[order] + eps)).T
    filters = filters.reshape(-1, 3, k, k).float()
    stem.conv.weight.data[:] = torch.cat((filters, -filters))


def prepare(model):
    """airbench's starting point: identity-started convolutions, BatchNorm scales fixed at 1
    with momentum 0.4 (PyTorch's convention), fixed whitening filters."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module is not model.stem.conv:
            nn.init.dirac_(module.weight.data[: module.in_channels])
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = 0.4
            module.weight.requires_grad = False
    model.stem.conv.weight.requires_grad = False


def triangle(steps):
    return np.interp(np.arange(steps + 1), [0, int(0.23 * steps), steps], [0.2, 1.0, 0.07])


def crops(padded, side, reach, generator):
    """Each image cut at a random offset of up to `reach` pixels from the centre."""
    shifts = torch.randint(-reach, reach + 1, (len(padded), 2), generator=generator)
    out = torch.empty(len(padded), 3, side, side)
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            chosen = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
            y, x = reach + dy, reach + dx
            out[chosen] = padded[chosen, :, y : y + side, x : x + side]
    return out


def logits_of_views(model, batch):
    """airbench's 6 views: the image and its mirror image, weighted 1/2, and both shifted a pixel
    up-left and down-right (reflected), 1/8 each."""

    def mirrored(x):
        return 0.5 * model(x) + 0.5 * model(x.flip(-1))

    side = batch.shape[-1]
    padded = F.pad(batch, (1,) * 4, "reflect")
    shifted = [padded[:, :, :side, :side], padded[:, :, 2:, 2:]]
    return 0.5 * mirrored(batch) + 0.25 * sum(mirrored(s) for s in shifted)


def accuracy(model, images, labels, views):
    model.eval()
    with torch.no_grad():
        logits = [logits_of_views(model, b) if views else model(b) for b in images.split(1000)]
        return (torch.cat(logits).argmax(1) == labels).float().mean().item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--epochs", type=float, default=9.9)
    parser.add_argument("--valid", type=int, default=5000)
    args = parser.parse_args()
    start = time.time()
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)

    images, labels, classes = read_images(args.data)
    order = torch.randperm(len(images), generator=generator)
    valid, train = order[: args.valid], order[args.valid :]
    train_x, train_y = images[train].float() / 255, labels[train]
    valid_x, valid_y = images[valid].float() / 255, labels[valid]
    mean, std = train_x.mean((0, 2, 3), keepdim=True), train_x.std((0, 2, 3), keepdim=True)
    train_x, valid_x = (train_x - mean) / std, (valid_x - mean) / std
    side = images.shape[-1]
    print(f"{len(train)} training / {len(valid)} validation images, {side}x{side}", flush=True)

    model = AirNet(classes, {})
    prepare(model)
    whiten(model.stem, train_x[:5000])
    macs = multiply_adds(model, side)

    steps_per_epoch = len(train_x) // BATCH
    total_steps = math.ceil(steps_per_epoch * args.epochs)
    kilo = 1024 * (1 + 1 / (1 - MOMENTUM))
    lr, decay = LR / kilo, WEIGHT_DECAY * BATCH / kilo
    shifts = [p for n, p in model.named_parameters() if ".bn." in n and p.requires_grad]
    others = [p for n, p in model.named_parameters() if ".bn." not in n and p.requires_grad]
    optimizer = torch.optim.SGD(
        [
            dict(params=shifts, lr=lr * BIAS_SCALE, weight_decay=decay / (lr * BIAS_SCALE)),
            dict(params=others, lr=lr, weight_decay=decay / lr),
        ],
        momentum=MOMENTUM,
        nesterov=True,
    )
    schedule = triangle(total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: schedule[step])
    loss_fn = nn.CrossEntropyLoss(label_smoothing=LABEL_SMOOTHING, reduction="none")

    # Half the images start mirrored; every other epoch mirrors them all (the alternating flip).
    first_flip = torch.rand(len(train_x), generator=generator) < 0.5
    flipped = torch.where(first_flip.view(-1, 1, 1, 1), train_x.flip(-1), train_x)
    padded = F.pad(flipped, (2,) * 4, "reflect")

    average, step, trained, reached, last = None, 0, 0, {}, None
    for epoch in range(math.ceil(args.epochs)):
        model.stem.bias.requires_grad = epoch < WHITEN_BIAS_EPOCHS
        epoch_x = crops(padded, side, 2, generator)
        if epoch % 2 == 1:
            epoch_x = epoch_x.flip(-1)
        batches = torch.randperm(len(epoch_x), generator=generator)
        model.train()
        for i in range(steps_per_epoch):
            chosen = batches[i * BATCH : (i + 1) * BATCH]
            loss = loss_fn(model(epoch_x[chosen]), train_y[chosen]).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            trained += len(chosen)
            if epoch >= LOOKAHEAD_FROM_EPOCH and step % LOOKAHEAD_EVERY == 0:
                state = model.state_dict()
                if average is None:
                    average = {k: v.clone() for k, v in state.items()}
                else:
                    keep = LOOKAHEAD_DECAY * (step / total_steps) ** 3
                    for name, value in state.items():
                        if value.is_floating_point():
                            average[name].lerp_(value, 1 - keep)
                            value.copy_(average[name])
            if step >= total_steps:
                break
        if average is not None:
            for name, value in model.state_dict().items():
                if value.is_floating_point():
                    value.copy_(average[name])
        last = accuracy(model, valid_x, valid_y, views=False)
        seconds = time.time() - start
        for target in (0.90, 0.93, 0.94):
            if last >= target and target not in reached:
                reached[target] = seconds
        print(f"epoch {epoch + 1}: {step} steps, {seconds:.0f} s, val_acc {last:.4f}", flush=True)
    final = accuracy(model, valid_x, valid_y, views=True)
    seconds = time.time() - start
    pflop = 6 * macs * trained / 1e15
    cells = [f"{reached[t]:.0f}" if t in reached else "-" for t in (0.90, 0.93, 0.94)]
    print(f"{macs / 1e9:.3f} GMAC per image; final accuracy with 6 views {final:.4f}")
    print(
        f"{'airbench-torch-' + str(args.seed):<22} {args.epochs:>6} {seconds:6.0f} {pflop:8.3f} "
        f"{cells[0]:>7} {cells[1]:>7} {cells[2]:>7} {last:9.4f} {final:9.4f}"
    )


if __name__ == "__main__":
    main()
