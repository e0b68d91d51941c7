"""Compact U-Net for per-pixel background / pit / pond segmentation of multispectral reflectance."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

CLASSES: tuple[str, ...] = ("background", "pit", "pond")


def _conv(cin: int, cout: int, separable: bool) -> nn.Sequential:
    """3x3 conv + BN + ReLU; depthwise-separable when ``separable`` (cheaper at wide layers)."""
    if separable:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False),
        ]
    else:
        layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False)]
    return nn.Sequential(*layers, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CompactUNet(nn.Module):
    """U-Net with ``levels`` 2x poolings; input reflectance 0..1, output softmax over ``CLASSES``.

    Normalisation (per-band mean/std of the training reflectance) is stored as buffers, so the
    exported ONNX graph takes raw reflectance.  H and W must be multiples of ``2**levels``.
    """

    def __init__(
        self,
        in_bands: int,
        base: int = 16,
        levels: int = 3,
        n_classes: int = len(CLASSES),
        separable_from: int = 2,
        band_mean: list[float] | None = None,
        band_std: list[float] | None = None,
    ) -> None:
        super().__init__()
        self.config = {"in_bands": in_bands, "base": base, "levels": levels, "n_classes": n_classes,
                       "separable_from": separable_from}
        mean = torch.tensor(band_mean if band_mean is not None else [0.0] * in_bands, dtype=torch.float32)
        std = torch.tensor(band_std if band_std is not None else [1.0] * in_bands, dtype=torch.float32)
        self.register_buffer("band_mean", mean.view(1, -1, 1, 1))
        self.register_buffer("band_std", std.view(1, -1, 1, 1))
        self.levels = levels
        widths = [base * (2**i) for i in range(levels + 1)]
        # full resolution: a 1x1 spectral mixing layer then one 3x3 conv (this level dominates the cost)
        self.stem = nn.Sequential(nn.Conv2d(in_bands, base, 1, bias=False), nn.BatchNorm2d(base), nn.ReLU(inplace=True),
                                  _conv(base, base, separable=separable_from <= 0))
        self.down = nn.ModuleList()
        for i in range(1, levels + 1):
            sep = i >= separable_from
            self.down.append(nn.Sequential(_conv(widths[i - 1], widths[i], sep), _conv(widths[i], widths[i], sep)))
        self.up = nn.ModuleList()
        for i in range(levels, 0, -1):
            sep = (i - 1) >= separable_from
            self.up.append(_conv(widths[i] + widths[i - 1], widths[i - 1], sep))
        self.head = nn.Conv2d(base, n_classes, 1)

    def forward(self, reflectance: torch.Tensor) -> torch.Tensor:
        x = (reflectance - self.band_mean) / self.band_std
        skips = [self.stem(x)]
        x = skips[0]
        for block in self.down:
            x = block(F.max_pool2d(x, 2))
            skips.append(x)
        for j, block in enumerate(self.up):
            skip = skips[self.levels - 1 - j]
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = block(torch.cat([x, skip], dim=1))
        return torch.softmax(self.head(x), dim=1)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
