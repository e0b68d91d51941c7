"""One ONNX graph for the "RF + DL" mean ensemble: the U-Net and the pixel Random Forest side by side.

The service runs any registered model through the same window loop (``amberwatch.detect.segment``), so the
ensemble is registered as a model of its own (``s2-unet-rf``) with the same contract as the U-Net: input
``reflectance`` [N, 10, H, W], output ``probabilities`` [N, 3, H, W] (background, pit, pond). Inside:

1. the U-Net (``unet/`` prefix) gives P_u;
2. the 18 per-pixel features of :func:`amberwatch_training.pixel_rf.features` are computed with ONNX operators
   (the same float32 arithmetic), flattened to [N*H*W, 18] and fed to the forest (``rf/`` prefix): P_r;
3. the mean ensemble of :func:`amberwatch_training.confuser_eval.combine`: mining m = (P_u(pit)+P_u(pond) +
   P_r(pit)+P_r(pond)) / 2, split into pit/pond by the U-Net's share, background 1 - m.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, compose, helper, numpy_helper

from .pixel_rf import forest_classes

EPS = 1e-6


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def build(unet_path: Path, rf_path: Path, out_path: Path) -> Path:
    """Write the ensemble graph of the U-Net at ``unet_path`` and the forest at ``rf_path`` (pixel_rf.export)."""
    unet = compose.add_prefix(onnx.load(str(unet_path)), "unet/")
    rf = compose.add_prefix(onnx.load(str(rf_path)), "rf/")
    rf_classes = forest_classes(rf)
    if rf_classes != [0, 1, 2]:
        raise ValueError(f"the forest must know the classes 0, 1, 2 (background, pit, pond), it has {rf_classes}")
    n, init = [], [
        _const("eps", np.float32(EPS)), _const("half", np.float32(0.5)), _const("one", np.float32(1.0)),
        _const("flat18", np.array([-1, 18], np.int64)),
        _const("split10", np.ones(10, np.int64)), _const("split3", np.ones(3, np.int64)),
        _const("three", np.array([3], np.int64)),
        _const("idx_hw", np.array([0, 2, 3], np.int64)),
    ]
    band = ["b", "g", "r", "re1", "re2", "re3", "n", "n8", "s1", "s2"]
    n.append(helper.make_node("Identity", ["reflectance"], ["unet/reflectance"]))
    n.append(helper.make_node("Split", ["reflectance", "split10"], band, axis=1))

    def nd(a: str, b: str, out: str) -> None:  # (a - b) / (a + b + eps), as pixel_rf._nd
        n.extend([helper.make_node("Sub", [a, b], [out + "_num"]), helper.make_node("Add", [a, b], [out + "_sum"]),
                  helper.make_node("Add", [out + "_sum", "eps"], [out + "_den"]),
                  helper.make_node("Div", [out + "_num", out + "_den"], [out])])

    nd("n", "r", "ndvi")
    nd("g", "n", "ndwi")
    nd("g", "s1", "mndwi")
    nd("s1", "n", "ndbi")
    n.extend([helper.make_node("Add", ["s1", "r"], ["s1r"]), helper.make_node("Add", ["n", "b"], ["nb"])])
    nd("s1r", "nb", "bsi")
    nd("n", "re1", "ndre")
    n.extend([helper.make_node("Add", ["s1", "eps"], ["s1e"]), helper.make_node("Div", ["s2", "s1e"], ["swir_ratio"]),
              helper.make_node("ReduceMean", ["reflectance"], ["brightness"], axes=[1], keepdims=1),
              helper.make_node("Concat", [*band, "ndvi", "ndwi", "mndwi", "ndbi", "bsi", "ndre", "swir_ratio",
                                          "brightness"], ["feat_nchw"], axis=1),
              helper.make_node("Transpose", ["feat_nchw"], ["feat_nhwc"], perm=[0, 2, 3, 1]),
              helper.make_node("Reshape", ["feat_nhwc", "flat18"], ["rf/features"])])
    post = [  # forest output [N*H*W, 3] -> [N, H, W, 3] -> [N, 3, H, W], then the mean ensemble
              helper.make_node("Shape", ["reflectance"], ["in_shape"]),
              helper.make_node("Gather", ["in_shape", "idx_hw"], ["nhw"]),
              helper.make_node("Concat", ["nhw", "three"], ["nhw3"], axis=0),
              helper.make_node("Reshape", ["rf/probabilities", "nhw3"], ["rf_nhwc"]),
              helper.make_node("Transpose", ["rf_nhwc"], ["rf_probs"], perm=[0, 3, 1, 2]),
              helper.make_node("Split", ["unet/probabilities", "split3"], ["u_bg", "u_pit", "u_pond"], axis=1),
              helper.make_node("Split", ["rf_probs", "split3"], ["r_bg", "r_pit", "r_pond"], axis=1),
              helper.make_node("Add", ["u_pit", "u_pond"], ["mu"]),
              helper.make_node("Add", ["r_pit", "r_pond"], ["mr"]),
              helper.make_node("Add", ["mu", "mr"], ["m2"]), helper.make_node("Mul", ["m2", "half"], ["m"]),
              helper.make_node("Max", ["mu", "eps"], ["mu_safe"]),
              helper.make_node("Div", ["u_pit", "mu_safe"], ["share"]),
              helper.make_node("Mul", ["m", "share"], ["pit"]),
              helper.make_node("Sub", ["one", "share"], ["pond_share"]),
              helper.make_node("Mul", ["m", "pond_share"], ["pond"]),
              helper.make_node("Sub", ["one", "m"], ["bg"]),
              helper.make_node("Concat", ["bg", "pit", "pond"], ["probabilities"], axis=1)]
    x = helper.make_tensor_value_info("reflectance", TensorProto.FLOAT, ["batch", 10, "height", "width"])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    nodes = n + list(unet.graph.node) + list(rf.graph.node) + post
    graph = helper.make_graph(nodes, "s2_unet_rf_mean_ensemble", [x], [y],
                              list(unet.graph.initializer) + list(rf.graph.initializer) + init)
    opsets = {o.domain: o.version for o in list(unet.opset_import) + list(rf.opset_import)}
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
                              producer_name="amberwatch_training.ensemble_onnx")
    model.ir_version = max(unet.ir_version, rf.ir_version)
    onnx.checker.check_model(model)
    Path(out_path).write_bytes(model.SerializeToString())
    return Path(out_path)
