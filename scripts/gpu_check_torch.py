"""PyTorch doing the work of scripts/gpu-check.sh, for images/s side by side.

    python3 gpu_check_torch.py CIFAR_JPEG_TAR WEIGHTS.pth PHOTO IMAGES COPIES

On CUDA when torch sees a GPU, else on the CPU (it says which). Three lines, one per task:
  convnet  one epoch of the tutorial's convnet (Adam 1e-3, batches of 128) on 75% of the
           images, then a validation pass on the other 25%; images/s = training images / seconds
  features EfficientNet-Lite0's pooled features of the first IMAGES images at 224x224 (resized
           from 32x32 on the device), batches of 64
  infer    decoding and classifying COPIES copies of PHOTO as one batch
Needs torch, numpy and pillow; imports lite0_torch.py from this folder.
"""

import io
import sys
import tarfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lite0_torch import features, forward, preprocess
from torch_nets import ConvNet

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def load_images(path):
    """All images of the image-folder archive as uint8 [n, 32, 32, 3], and their labels."""
    images, labels, classes = [], [], {}
    with tarfile.open(path) as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 3 or parts[0] != "train":
                continue
            label = classes.setdefault(parts[1], len(classes))
            data = tar.extractfile(member).read()
            images.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
            labels.append(label)
    return np.stack(images), np.array(labels)


def convnet_epoch(images, labels):
    n_train = len(images) * 3 // 4
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    mean, std = x[:n_train].mean(0), x[:n_train].std(0) + 1e-7
    x, y = ((x - mean) / std).to(DEVICE), torch.from_numpy(labels).to(DEVICE)
    model = ConvNet().to(DEVICE)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    sync()
    start = time.perf_counter()
    model.train()
    for batch in torch.randperm(n_train, device=DEVICE).split(128):
        loss = F.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.inference_mode():
        for first in range(n_train, len(x), 128):
            model(x[first:first + 128]).argmax(1).cpu()
    sync()
    seconds = time.perf_counter() - start
    return n_train, seconds


def lite0_features(t, images):
    start = time.perf_counter()
    with torch.inference_mode():
        for first in range(0, len(images), 64):
            batch = torch.from_numpy(images[first:first + 64]).to(DEVICE).permute(0, 3, 1, 2).float()
            batch = F.interpolate(batch, size=(224, 224), mode="bilinear", align_corners=False)
            features(t, (batch - 127.0) / 128.0).cpu()
    sync()
    return len(images), time.perf_counter() - start


def infer_copies(t, photo, copies):
    start = time.perf_counter()
    with torch.inference_mode():
        batch = torch.stack([preprocess(photo) for _ in range(copies)]).to(DEVICE)
        forward(t, batch).softmax(1).cpu()
    sync()
    return copies, time.perf_counter() - start


def main():
    archive, weights, photo = sys.argv[1], sys.argv[2], sys.argv[3]
    count, copies = int(sys.argv[4]), int(sys.argv[5])
    name = torch.cuda.get_device_name() if DEVICE.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"pytorch {torch.__version__} on {name}")
    images, labels = load_images(archive)
    order = np.random.default_rng(0).permutation(len(images))
    images, labels = images[order], labels[order]
    t = {k: v.float().to(DEVICE) for k, v in torch.load(weights, map_location="cpu").items()}
    # One untimed round of each, so that CUDA's start-up and cuDNN's choices are not timed.
    convnet_epoch(images[:512], labels[:512])
    lite0_features(t, images[:64])
    infer_copies(t, photo, 2)
    for task, (n, seconds) in [
        ("convnet", convnet_epoch(images, labels)),
        ("features", lite0_features(t, images[:count])),
        ("infer", infer_copies(t, photo, copies)),
    ]:
        print(f"{task} {n} {seconds:.3f} {n / seconds:.1f}")


if __name__ == "__main__":
    main()
