"""The project's benchmark networks in PyTorch, layer for layer as the Rust crates build them:
ConvNet (crates/models/src/convnet.rs), KerasCnn (the Keras cifar10_cnn example, as in
crates/train/examples/throughput.rs) and Lite0 (EfficientNet-Lite0 with TensorFlow 'SAME'
padding, crates/models/src/efficientnet.rs)."""

import torch.nn as nn
import torch.nn.functional as F

from lite0_torch import STAGES, conv_same


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList(
            [nn.Conv2d(3, 32, 3), nn.Conv2d(32, 32, 3), nn.Conv2d(32, 64, 5), nn.Conv2d(64, 64, 5)]
        )
        self.fc1, self.fc2, self.out = nn.Linear(6 * 6 * 64, 1024), nn.Linear(1024, 1024), nn.Linear(1024, 10)

    def forward(self, x):
        x = F.relu(self.convs[1](F.relu(self.convs[0](x))))
        x = F.max_pool2d(x, 2)
        x = F.relu(self.convs[3](F.relu(self.convs[2](x))))
        x = F.relu(self.fc2(F.relu(self.fc1(x.flatten(1)))))
        return self.out(x)


class KerasCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList([
            nn.Conv2d(3, 32, 3, padding=1), nn.Conv2d(32, 32, 3),
            nn.Conv2d(32, 64, 3, padding=1), nn.Conv2d(64, 64, 3),
        ])
        self.dense, self.out = nn.Linear(6 * 6 * 64, 512), nn.Linear(512, 10)

    def forward(self, x):
        for i in (0, 2):
            x = F.relu(self.convs[i + 1](F.relu(self.convs[i](x))))
            x = F.dropout(F.max_pool2d(x, 2), 0.25, self.training)
        return self.out(F.dropout(F.relu(self.dense(x.flatten(1))), 0.5, self.training))


class ConvBn(nn.Module):
    def __init__(self, c_in, c_out, kernel, stride=1, groups=1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=1e-3)

    def forward(self, x):
        return self.bn(conv_same(x, self.conv.weight, self.conv.stride[0], self.conv.groups))


class MbConv(nn.Module):
    def __init__(self, c_in, c_out, kernel, stride, expand):
        super().__init__()
        hidden = c_in * expand
        self.expand = ConvBn(c_in, hidden, 1) if expand != 1 else None
        self.depthwise = ConvBn(hidden, hidden, kernel, stride, hidden)
        self.project = ConvBn(hidden, c_out, 1)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        y = F.relu6(self.expand(x)) if self.expand else x
        y = self.project(F.relu6(self.depthwise(y)))
        return x + y if self.residual else y


class Lite0(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = ConvBn(3, 32, 3, 2)
        blocks, c_in = [], 32
        for repeats, kernel, stride, expand, channels in STAGES:
            for r in range(repeats):
                blocks.append(MbConv(c_in, channels, kernel, stride if r == 0 else 1, expand))
                c_in = channels
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBn(c_in, 1280, 1)
        self.fc = nn.Linear(1280, classes)

    def forward(self, x):
        x = self.blocks(F.relu6(self.stem(x)))
        x = F.relu6(self.head(x)).mean((2, 3))
        return self.fc(F.dropout(x, 0.2, self.training))
