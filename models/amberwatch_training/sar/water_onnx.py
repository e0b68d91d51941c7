"""Build the ``s1-water`` ONNX graph: open water where every polarisation is below its per-scene threshold.

    inputs:  db [N, C, H, W] float32 (Lee-filtered backscatter in dB, channels in the card's band order)
             thresholds [C] float32 (dB, learned per scene by Otsu: amberwatch.sar.water.learn_thresholds)
    output:  water [N, 1, H, W] = sigmoid(min_c (thresholds_c - db_c) / SOFTNESS_DB)

So ``water > 0.5`` is exactly "all channels below their thresholds", and the probability says by how many dB.
The graph has no trained weights: what is learned is the pair of thresholds, per scene. Run:
``.venv/bin/python -m amberwatch_training.sar.water_onnx models/registry/s1-water/1.0.0``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import onnx
from onnx import TensorProto, helper

SOFTNESS_DB = 1.0
VERSION = "1.0.0"


def build_graph() -> onnx.ModelProto:
    db = helper.make_tensor_value_info("db", TensorProto.FLOAT, ["N", "C", "H", "W"])
    thr = helper.make_tensor_value_info("thresholds", TensorProto.FLOAT, ["C"])
    out = helper.make_tensor_value_info("water", TensorProto.FLOAT, ["N", 1, "H", "W"])
    shape = helper.make_tensor("thr_shape", TensorProto.INT64, [4], [1, -1, 1, 1])
    soft = helper.make_tensor("softness", TensorProto.FLOAT, [], [SOFTNESS_DB])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    nodes = [
        helper.make_node("Reshape", ["thresholds", "thr_shape"], ["thr4"]),
        helper.make_node("Sub", ["thr4", "db"], ["margin"]),
        helper.make_node("Div", ["margin", "softness"], ["scaled"]),
        helper.make_node("ReduceMin", ["scaled", "axes"], ["least"], keepdims=1),
        helper.make_node("Sigmoid", ["least"], ["water"]),
    ]
    graph = helper.make_graph(nodes, "s1_water", [db, thr], [out], initializer=[shape, soft, axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="amberwatch")
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def card() -> dict:
    return {
        "type": "Feature", "stac_version": "1.0.0",
        "stac_extensions": ["https://stac-extensions.github.io/mlm/v1.4.0/schema.json"],
        "id": f"s1-water-{VERSION}", "geometry": None,
        "properties": {
            "datetime": None, "start_datetime": "2014-04-03T00:00:00Z", "end_datetime": "2030-12-31T23:59:59Z",
            "description": "Sentinel-1 open water / ponds: a pixel is water when its Lee-filtered VV (and VH when "
                           "present) backscatter in dB is below thresholds learned per scene by Otsu's method and "
                           "clamped to physical ranges (amberwatch.sar.water). See models/cards/s1-water.md.",
            "mlm:name": "s1-water", "amberwatch:version": VERSION, "amberwatch:family": "sentinel1",
            "mlm:architecture": "per-scene thresholds (Otsu) + soft minimum margin, no trained weights",
            "mlm:tasks": ["semantic-segmentation"], "mlm:framework": "onnx", "mlm:framework_version": onnx.__version__,
            "mlm:accelerator": "amd64", "mlm:accelerator_constrained": False, "mlm:pretrained": False,
            "mlm:input": [{"name": "db", "bands": ["VV", "VH"],
                           "input": {"shape": [-1, -1, -1, -1], "dim_order": ["batch", "channel", "height", "width"],
                                     "data_type": "float32"}}],
            "mlm:output": [{"name": "water", "tasks": ["semantic-segmentation"],
                            "result": {"shape": [-1, 1, -1, -1], "dim_order": ["batch", "channel", "height", "width"],
                                       "data_type": "float32"},
                            "classification:classes": [{"value": 1, "name": "water"}]}],
            "amberwatch:softness_db": SOFTNESS_DB,
        },
        "assets": {"model": {"href": "./model.onnx", "type": "application/octet-stream; application=onnx",
                             "roles": ["mlm:model"]}},
        "links": [],
    }


def main(out_dir: str) -> None:
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    onnx.save(build_graph(), target / "model.onnx")
    (target / "mlm.json").write_text(json.dumps(card(), indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else f"models/registry/s1-water/{VERSION}")
