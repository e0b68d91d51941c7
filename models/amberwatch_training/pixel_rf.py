"""The grant's "RF": a pixel Random Forest on spectral indices, exported with skl2onnx and run by onnxruntime.

Hand-off: :func:`features` turns the model's 10-band reflectance stack into per-pixel features (the bands and
spectral indices) in numpy; the ONNX graph is the forest alone (input ``features`` [N, F] float32, output
``probabilities`` [N, 3] over background/pit/pond).  Trained on the same simulated chips of the training region
as the U-Net (:func:`dataset.chip_bank`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

# model band order: blue green red rededge1 rededge2 rededge3 nir nir08 swir16 swir22
FEATURE_NAMES = ("blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08", "swir16", "swir22",
                 "ndvi", "ndwi", "mndwi", "ndbi", "bsi", "ndre", "swir_ratio", "brightness")


def _nd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a - b) / (a + b + 1e-6)


def features(stack: np.ndarray) -> np.ndarray:
    """[10, H, W] reflectance -> [H*W, 18] float32: bands, NDVI, NDWI, MNDWI, NDBI, BSI, NDRE, SWIR22/16, mean."""
    b, g, r, re1, _re2, _re3, n, _n8, s1, s2 = stack
    idx = [_nd(n, r), _nd(g, n), _nd(g, s1), _nd(s1, n), _nd(s1 + r, n + b), _nd(n, re1), s2 / (s1 + 1e-6),
           stack.mean(axis=0)]
    f = np.concatenate([stack, np.stack(idx)]).reshape(len(FEATURE_NAMES), -1).T
    return np.ascontiguousarray(f, np.float32)


def train(x: np.ndarray, y: np.ndarray, seed: int = 0, per_chip: int = 600, trees: int = 60, depth: int = 14):
    """Fit a RandomForestClassifier on pixels of chips x [n, 10, S, S], labels y [n, S, S] (mining pixels all,
    background subsampled per chip)."""
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for xi, yi in zip(x, y, strict=True):
        f, lab = features(xi), yi.ravel()
        pos = np.flatnonzero(lab > 0)
        neg = rng.choice(np.flatnonzero(lab == 0), min(per_chip, int((lab == 0).sum())), replace=False)
        sel = np.concatenate([pos[: per_chip], neg])
        xs.append(f[sel])
        ys.append(lab[sel])
    clf = RandomForestClassifier(n_estimators=trees, max_depth=depth, min_samples_leaf=3, class_weight="balanced",
                                 random_state=seed, n_jobs=1)
    clf.fit(np.concatenate(xs), np.concatenate(ys))
    return clf


def export(clf, path: Path) -> Path:  # type: ignore[no-untyped-def]
    """ONNX of the forest: input ``features`` [N, 18] -> ``probabilities`` [N, 3] (no ZipMap)."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    onx = to_onnx(clf, initial_types=[("features", FloatTensorType([None, len(FEATURE_NAMES)]))],
                  options={id(clf): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    path.write_bytes(onx.SerializeToString())
    return path


def forest_classes(model: onnx.ModelProto) -> list[int]:
    """Class labels of the forest in an exported graph (the TreeEnsembleClassifier's ``classlabels_int64s``)."""
    return next(list(a.ints) for n in model.graph.node if n.op_type == "TreeEnsembleClassifier"
                for a in n.attribute if a.name == "classlabels_int64s")


class PixelRF:
    """onnxruntime session of an exported forest; :meth:`__call__` gives [3, H, W] probabilities of a stack."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.output = [o.name for o in self.session.get_outputs()][-1]
        self.classes = forest_classes(onnx.load(str(path)))

    def __call__(self, stack: np.ndarray) -> np.ndarray:
        _, h, w = stack.shape
        p = self.session.run([self.output], {"features": features(stack)})[0]
        out = np.zeros((3, h * w), np.float32)
        out[self.classes] = np.asarray(p, np.float32).T  # classes absent from training get probability 0
        return out.reshape(3, h, w)
