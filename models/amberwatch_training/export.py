"""ONNX export of a segmentation model and the ONNX-vs-PyTorch parity check."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from .model import CompactUNet

INPUT_NAME = "reflectance"
OUTPUT_NAME = "probabilities"
OPSET = 17


def export_onnx(model: CompactUNet, path: Path, in_bands: int) -> Path:
    """Export with dynamic N/H/W; input 'reflectance' [N, C, H, W] -> output 'probabilities' [N, 3, H, W]."""
    model = model.eval()
    multiple = 2 ** model.levels
    dummy = torch.rand(1, in_bands, 4 * multiple, 4 * multiple)
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (dummy,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes}, opset_version=OPSET, dynamo=False)
    onnx.checker.check_model(onnx.load(str(path)))
    return path


def parity(model: CompactUNet, onnx_path: Path, in_bands: int, size: int = 64, batch: int = 2, seed: int = 0) -> float:
    """Max abs difference of ONNX Runtime vs PyTorch probabilities on random reflectance."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 0.6, (batch, in_bands, size, size)).astype(np.float32)
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    out = sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    return float(np.abs(out - ref).max())


def session(onnx_path: Path, threads: int | None = None) -> ort.InferenceSession:
    """CPU ONNX Runtime session (training-side evaluation only; the service has its own runtime)."""
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])


def predict(sess: ort.InferenceSession, stack: np.ndarray, multiple: int, window: int = 512) -> np.ndarray:
    """Probabilities [3, H, W] of a [C, H, W] stack, padded (reflect) to the model multiple, in windows."""
    c, h, w = stack.shape
    out = np.zeros((3, h, w), np.float32)
    overlap = 32
    step = window - 2 * overlap
    for r in range(0, h, step):
        for q in range(0, w, step):
            r0, q0 = max(0, r - overlap), max(0, q - overlap)
            r1, q1 = min(h, r + step + overlap), min(w, q + step + overlap)
            tile = stack[:, r0:r1, q0:q1]
            ph, pw = (-tile.shape[1]) % multiple, (-tile.shape[2]) % multiple
            tile = np.pad(tile, ((0, 0), (0, ph), (0, pw)), mode="reflect" if min(tile.shape[1:]) > 1 else "edge")
            prob = sess.run([OUTPUT_NAME], {INPUT_NAME: tile[None]})[0][0, :, : r1 - r0, : q1 - q0]
            rr1, qq1 = min(h, r + step), min(w, q + step)
            out[:, r:rr1, q:qq1] = prob[:, r - r0: rr1 - r0, q - q0: qq1 - q0]
    return out
