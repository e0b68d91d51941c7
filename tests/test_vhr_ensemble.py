"""The VHR seed ensemble (``amberwatch_training.vhr.ensemble``): members merged into one ONNX graph whose output is
the mean of theirs, the averaged folds, and the refusals of members that do not fit together."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnxruntime as ort
import pytest
from conftest import REPO

if str(REPO / "models") not in sys.path:  # amberwatch_training, when the package is not installed
    sys.path.append(str(REPO / "models"))

from amberwatch_training.vhr.ensemble import average_folds, merge_graphs  # noqa: E402
from amberwatch_training.vhr.train_effnet import score_saved_folds  # noqa: E402


def tiny_member(path: Path, weight: float, size: int = 8, output: str = "probability") -> Path:
    """image [N, 3, size, size] -> sigmoid(weight * mean(image) / 255 - 0.5 * weight) -> [N, 1]; the same node and
    initializer names in every member, as two exports of one architecture have."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("ReduceMean", ["image"], ["m"], axes=[1, 2, 3], keepdims=0),
             helper.make_node("Unsqueeze", ["m", "axes"], ["m1"]),
             helper.make_node("Mul", ["m1", "w"], ["z"]),
             helper.make_node("Add", ["z", "b"], ["zb"]),
             helper.make_node("Sigmoid", ["zb"], [output])]
    inits = [helper.make_tensor("w", TensorProto.FLOAT, [], [weight / 255.0]),
             helper.make_tensor("b", TensorProto.FLOAT, [], [-0.5 * weight]),
             helper.make_tensor("axes", TensorProto.INT64, [1], [1])]
    graph = helper.make_graph(nodes, "member", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                             ["batch", 3, size, size])],
                              [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def run(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {"image": x})[0])


def test_merged_graph_gives_the_mean_of_its_members(tmp_path: Path) -> None:
    a, b = tiny_member(tmp_path / "a.onnx", 4.0), tiny_member(tmp_path / "b.onnx", -2.0)
    merge_graphs([a, b], tmp_path / "ens.onnx")
    x = np.random.default_rng(0).uniform(0, 255, (5, 3, 8, 8)).astype(np.float32)
    pa, pb, pe = run(a, x), run(b, x), run(tmp_path / "ens.onnx", x)
    assert pe.shape == (5, 1)
    assert np.abs(pa - pb).max() > 0.05  # the members really differ
    np.testing.assert_allclose(pe, (pa + pb) / 2, atol=1e-6)


def test_members_that_do_not_fit_together_are_refused(tmp_path: Path) -> None:
    a = tiny_member(tmp_path / "a.onnx", 1.0)
    with pytest.raises(ValueError, match="differs from the first member"):
        merge_graphs([a, tiny_member(tmp_path / "b.onnx", 1.0, size=16)], tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="not"):
        merge_graphs([a, tiny_member(tmp_path / "c.onnx", 1.0, output="score")], tmp_path / "x.onnx")


def _fold(path: Path, test: list[int], val: list[int], p_test: list[float], p_val: list[float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, test=np.array(test), val=np.array(val), p_test=np.array(p_test), p_val=np.array(p_val),
             threshold=0.5)


def test_folds_are_averaged_only_over_the_same_chips(tmp_path: Path) -> None:
    _fold(tmp_path / "a" / "fold0.npz", [0, 1], [2, 3], [0.2, 0.9], [0.1, 0.8])
    _fold(tmp_path / "a" / "fold1.npz", [2, 3], [0, 1], [0.3, 0.7], [0.4, 0.6])
    _fold(tmp_path / "b" / "fold0.npz", [0, 1], [2, 3], [0.4, 0.5], [0.3, 0.6])
    _fold(tmp_path / "b" / "fold1.npz", [2, 3], [0, 1], [0.1, 0.9], [0.2, 0.8])
    folds = average_folds([tmp_path / "a", tmp_path / "b"], tmp_path / "ens")
    np.testing.assert_allclose(folds[0]["p_test"], [0.3, 0.7])
    np.testing.assert_allclose(folds[1]["p_val"], [0.3, 0.7])
    assert sorted(p.name for p in (tmp_path / "ens").iterdir()) == ["fold0.npz", "fold1.npz"]
    y = np.array([0, 1, 0, 1])
    chips = SimpleNamespace(tiles=np.array(["t0", "t0", "t1", "t1"]))  # what the scoring reads of a ChipSet
    cv = score_saved_folds(chips, folds, {"original": y}, "f1")  # type: ignore[arg-type]
    assert cv["original"]["pooled"]["f1"] == 1.0 and len(cv["original"]["per_fold"]) == 2
    _fold(tmp_path / "c" / "fold0.npz", [0, 2], [1, 3], [0.2, 0.9], [0.1, 0.8])
    _fold(tmp_path / "c" / "fold1.npz", [1, 3], [0, 2], [0.3, 0.7], [0.4, 0.6])
    with pytest.raises(ValueError, match="not the same folds"):
        average_folds([tmp_path / "a", tmp_path / "c"])
