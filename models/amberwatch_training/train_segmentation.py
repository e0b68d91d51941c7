"""Train the compact U-Net on simulated mining in a real scene, export ONNX, evaluate, write the registry folder.

    python -m amberwatch_training.train_segmentation --family sentinel2 --out models/registry/s2-unet/1.0.0 \\
        --epochs 30 --seed 0

With ``--labels labels.gpkg --scenes <GeoTIFFs or folders>`` the chips of the validated labels (``amberwatch labels
export``; ``label_chips.label_chip_bank``) are added to the simulated training chips.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from .dataset import CHIP_SIZE, chip_bank
from .evaluate import write_metrics
from .export import export_onnx, parity
from .label_chips import label_chip_bank
from .mlm import model_card
from .model import CompactUNet, count_parameters
from .scenes import MODEL_BANDS

ARCH = {"sentinel2": {"base": 16, "levels": 3, "separable_from": 0},
        "landsat": {"base": 16, "levels": 3, "separable_from": 0}}
CLASS_WEIGHTS = (1.0, 4.0, 4.0)


def _augment(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    k = int(torch.randint(0, 4, (1,), generator=gen))
    x, y = torch.rot90(x, k, (2, 3)), torch.rot90(y, k, (1, 2))
    if torch.rand(1, generator=gen) < 0.5:
        x, y = x.flip(3), y.flip(2)
    gain = 1 + 0.06 * torch.randn(x.shape[0], 1, 1, 1, generator=gen)  # illumination / calibration jitter
    return x * gain, y


def _iou(model: CompactUNet, x: np.ndarray, y: np.ndarray, batch: int = 32) -> dict[str, float]:
    model.eval()
    conf = np.zeros((3, 3), np.int64)
    with torch.no_grad():
        for i in range(0, len(x), batch):
            p = model(torch.from_numpy(x[i:i + batch])).argmax(1).numpy()
            conf += np.bincount(y[i:i + batch].ravel().astype(int) * 3 + p.ravel(), minlength=9).reshape(3, 3)
    out = {}
    for c, n in enumerate(("background", "pit", "pond")):
        out[n] = float(conf[c, c] / max(1, conf[c].sum() + conf[:, c].sum() - conf[c, c]))
    return out


def train_segmentation(family: str, out_dir: Path, epochs: int = 30, seed: int = 0, chips: int = 3000,
                       progress: bool = True, evaluate_realizations: int = 6, version: str | None = None,
                       batch_size: int = 16, lr: float = 3e-3, negatives: str = "confuser-boost",
                       labels: Path | None = None, scenes: list[Path] | None = None) -> dict[str, Any]:
    """Train, export ``model.onnx`` + ``mlm.json`` + ``metrics.json`` into ``out_dir``; return the test metrics.

    ``labels`` (a GeoPackage of ``amberwatch labels export``) with ``scenes`` (GeoTIFFs, or folders of them): chips
    around its confirmed and rejected polygons join the training chips (recorded under ``training.label_chips``)."""
    if labels is not None and not scenes:
        raise ValueError("labels need the scenes (GeoTIFFs) to cut their chips from")
    if family not in MODEL_BANDS:
        raise ValueError(f"unknown family {family!r}: expected one of {sorted(MODEL_BANDS)}")
    bank = None  # the label chips first: bad labels or scenes fail before anything is made or written
    if labels is not None:
        bank = label_chip_bank(Path(labels), [Path(s) for s in scenes or []], family, size=CHIP_SIZE[family])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    version = version or out_dir.name
    t0 = time.time()
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    x_tr, y_tr = chip_bank(family, "train", chips, seed, progress=progress, negatives=negatives)
    x_va, y_va = chip_bank(family, "val", max(16, chips // 6), seed, progress=progress, negatives=negatives)
    label_info: dict[str, Any] | None = None
    if bank is not None:
        x_tr, y_tr = np.concatenate([x_tr, bank.x]), np.concatenate([y_tr, bank.y.astype(y_tr.dtype)])
        label_info = {"labels": Path(labels).name, "positives": bank.positives, "negatives": bank.negatives,
                      "dropped_negatives": bank.dropped_negatives, "scenes": bank.scenes}
    t_data = time.time() - t0
    bands = MODEL_BANDS[family]
    flat = x_tr.transpose(1, 0, 2, 3).reshape(len(bands), -1)
    model = CompactUNet(len(bands), **ARCH[family], band_mean=flat.mean(1).tolist(),
                        band_std=(flat.std(1) + 1e-4).tolist())
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * int(np.ceil(len(x_tr) / batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, steps))
    weights = torch.tensor(CLASS_WEIGHTS)
    gen = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr.astype(np.int64))
    best, best_state, history = -1.0, None, []
    bar = range(epochs)
    if progress:
        from tqdm import tqdm

        bar = tqdm(bar, desc=f"train {family}")
    for epoch in bar:
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        losses = []
        for i in range(0, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            xb, yb = _augment(xt[idx], yt[idx], gen)
            probs = model(xb)
            loss = F.nll_loss(torch.log(probs.clamp_min(1e-7)), yb, weight=weights)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        val = _iou(model, x_va, y_va)
        score = (val["pit"] + val["pond"]) / 2
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_iou": val})
        if progress:
            bar.set_postfix(loss=f"{np.mean(losses):.3f}", pit=f"{val['pit']:.2f}", pond=f"{val['pond']:.2f}")
        if score >= best:
            best, best_state = score, {k: v.clone() for k, v in model.state_dict().items()}
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    t_train = time.time() - t0 - t_data
    onnx_path = export_onnx(model, out_dir / "model.onnx", len(bands))
    max_diff = parity(model, onnx_path, len(bands), size=2 ** model.levels * 8)
    torch.save({"config": model.config, "state_dict": model.state_dict()}, out_dir / "model.pt")
    name = {"sentinel2": "s2-unet", "landsat": "landsat-unet"}[family]
    train_info = {
        "seed": seed, "epochs": epochs, "chips": chips, "chip_size": int(x_tr.shape[-1]), "batch_size": batch_size,
        "lr": lr, "class_weights": list(CLASS_WEIGHTS), "negatives": negatives, "best_val_mean_iou": best,
        "train_samples": int(len(x_tr)), "label_chips": label_info,
        "history": history,
        "onnx_parity_max_abs_diff": max_diff, "data_seconds": round(t_data, 1), "train_seconds": round(t_train, 1),
        "torch_version": torch.__version__,
        "command": f"python -m amberwatch_training.train_segmentation --family {family} --out {out_dir} "
                   f"--epochs {epochs} --seed {seed} --chips {chips} --negatives {negatives}"
                   + (f" --labels {labels} --scenes {' '.join(str(x) for x in scenes or [])}" if labels else ""),
    }
    card = model_card(name, version, family, list(bands), 2 ** model.levels, count_parameters(model),
                      f"CompactUNet(base={ARCH[family]['base']}, levels={ARCH[family]['levels']}, depthwise-separable)",
                      {}, train_info)
    (out_dir / "mlm.json").write_text(json.dumps(card, indent=2))
    metrics: dict[str, Any] = {"validation_chip_iou": history[-1]["val_iou"], "best_val_mean_iou": best,
                               "onnx_parity_max_abs_diff": max_diff}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    card["properties"]["metrics"] = metrics
    (out_dir / "mlm.json").write_text(json.dumps(card, indent=2))
    if evaluate_realizations > 0:  # decision rule chosen on the validation region, then the test region scored
        write_metrics(out_dir, family, evaluate_realizations)
    return json.loads((out_dir / "metrics.json").read_text())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", required=True, choices=sorted(MODEL_BANDS))
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chips", type=int, default=3000)
    ap.add_argument("--eval-realizations", type=int, default=12)
    ap.add_argument("--negatives", default="confuser-boost", choices=["uniform", "confuser-boost"],
                    help="confuser mix of the training chips (1.0.0 models: uniform)")
    ap.add_argument("--labels", type=Path, help="validated labels (amberwatch labels export --out labels.gpkg)")
    ap.add_argument("--scenes", type=Path, nargs="*", default=[], help="scene GeoTIFFs (or folders) for --labels")
    a = ap.parse_args(argv)
    m = train_segmentation(a.family, a.out, a.epochs, a.seed, a.chips, True, a.eval_realizations,
                           negatives=a.negatives, labels=a.labels, scenes=a.scenes)
    print(json.dumps(m.get("test", m), indent=2))


if __name__ == "__main__":
    main()
