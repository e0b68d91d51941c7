"""A small CNN trained from scratch on the chips (no pretrained weights), exported to ONNX.

Input of the exported graph: float32 [N, 3, H, W] RGB 0..255 at ``CNN_GSD`` m/px (any H, W >= 32; the chip is
downscaled 2x from Texty's ~0.37 m); normalisation is inside the graph; output: [N, 1] probability of amber mining.
Global average + max pooling make the network independent of the chip size.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from amberwatch.vhr.preprocess import cnn_input

log = logging.getLogger(__name__)

CROP = 96  # training crop at the CNN resolution (~71 m)
MEAN = (0.40, 0.44, 0.33)
STD = (0.15, 0.13, 0.12)


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class ChipNet(nn.Module):
    """stem (stride 2) + 4 residual-free VGG-style stages + global avg/max pooling + linear."""

    def __init__(self, widths: tuple[int, ...] = (24, 32, 48, 64, 96), dropout: float = 0.3) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1) * 255.0)
        layers = [nn.Conv2d(3, widths[0], 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(widths[0]),
                  nn.ReLU(inplace=True)]
        for cin, cout in zip(widths[:-1], widths[1:], strict=True):
            layers.append(_block(cin, cout, 2))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * widths[-1], 1))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features((x - self.mean) / self.std)
        pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)
        return self.head(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))


@dataclass
class CnnConfig:
    epochs: int = 40
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    widths: tuple[int, ...] = (24, 32, 48, 64, 96)
    tta: bool = True


def load_images(paths: list[Path]) -> list[np.ndarray]:
    """Chips as uint8 [3, h, w] at the CNN resolution."""
    from amberwatch.vhr.io import read_rgb

    return [cnn_input(read_rgb(p)) for p in paths]


def _random_crop(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    c, h, w = img.shape
    if h < CROP or w < CROP:
        ph, pw = max(0, CROP - h), max(0, CROP - w)
        img = np.pad(img, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)), mode="reflect")
        c, h, w = img.shape
    y = rng.integers(0, h - CROP + 1)
    x = rng.integers(0, w - CROP + 1)
    out = img[:, y : y + CROP, x : x + CROP]
    k = int(rng.integers(0, 4))
    out = np.rot90(out, k, axes=(1, 2))
    if rng.random() < 0.5:
        out = out[:, :, ::-1]
    out = out.astype(np.float32)
    gain = rng.uniform(0.85, 1.15, size=(3, 1, 1)).astype(np.float32) * rng.uniform(0.9, 1.1)
    bias = rng.uniform(-12, 12)
    return np.clip(out * gain + bias, 0, 255)


def train_cnn(images: list[np.ndarray], labels: np.ndarray, cfg: CnnConfig, seed: int = 0,
              progress: bool = False) -> ChipNet:
    """Train ChipNet on uint8 [3, h, w] images with 0/1 labels."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = ChipNet(cfg.widths)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(images)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch,
                                                pct_start=0.15)
    pos = max(1, int(labels.sum()))
    pos_weight = torch.tensor([math.sqrt((n - pos) / pos)])
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    epochs = range(cfg.epochs)
    if progress:
        from tqdm import tqdm

        epochs = tqdm(epochs, desc="cnn epochs", unit="epoch")
    for _ in epochs:
        model.train()
        order = rng.permutation(n)
        for b in range(steps_per_epoch):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            if len(idx) < 2:
                continue
            x = torch.from_numpy(np.stack([_random_crop(images[i], rng) for i in idx]))
            y = torch.from_numpy(labels[idx].astype(np.float32)).unsqueeze(1)
            opt.zero_grad()
            loss = loss_fn(model.logits(x), y)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return model


@torch.no_grad()
def predict_cnn(model: ChipNet, images: list[np.ndarray], tta: bool = True) -> np.ndarray:
    """Probability per image (whole chip, variable size; mean over 4 flips/rotations when ``tta``)."""
    model.eval()
    out = np.zeros(len(images), dtype=np.float64)
    for i, img in enumerate(images):
        x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).unsqueeze(0)
        views = [x, x.flip(3), x.flip(2), x.rot90(1, (2, 3))] if tta else [x]
        out[i] = float(torch.cat([model(v) for v in views]).mean())
    return out


def export_onnx(model: ChipNet, path: Path) -> None:
    """Export with dynamic batch/height/width; input ``image`` float32 [N,3,H,W] 0..255, output ``probability``."""
    model.eval()
    dummy = torch.zeros(1, 3, 128, 128)
    torch.onnx.export(
        model, (dummy,), str(path), input_names=["image"], output_names=["probability"],
        dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "probability": {0: "batch"}},
        opset_version=17, dynamo=False,
    )
