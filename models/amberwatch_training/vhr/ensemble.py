"""Seed ensemble of fine-tuned ``image_square`` CNNs, merged into ONE ONNX graph (the mean of the members'
probabilities), so the service loads it like any ``image_square`` model (and the cascade head sits on it).

Members are :mod:`amberwatch_training.vhr.train_effnet` runs with the same settings, folds and splits (``--seed``)
and another fine-tuning seed (``--fit-seed-offset``). The mean over members commutes with the runtime's mean over
the 8 dihedral views, so the folds' averaged scores are exactly what the merged graph gives.

- ``--folds DIR ...`` (one per member, from ``--save-folds``): the ensemble's grouped CV, per fold and pooled, each
  test fold at the threshold chosen on its own validation part (``threshold_rule``; ``train_effnet.score_saved_folds``,
  as ``--rescore-folds`` does for one model); ``--folds-out`` writes the averaged folds
  for :mod:`amberwatch_training.vhr.stack_head`.
- ``--members DIR ...`` (registered ``--no-cv`` runs on the development tiles): the merged ``model.onnx``, its
  threshold chosen on the members' shared validation part, held-out tiles scored once through the service.

    .venv/bin/python -m amberwatch_training.vhr.ensemble --data /work/shared/data/vhr/texty-chips \
        --folds /tmp/a-folds /tmp/b-folds --folds-out /tmp/ens-folds --members /tmp/a /tmp/b --out /tmp/ens-cnn
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from amberwatch_training.vhr.metrics import chip_metrics, choose_threshold

INPUT, OUTPUT = "image", "probability"


def merge_graphs(member_paths: list[Path], out_path: Path) -> None:
    """One graph: input ``image`` -> every member -> ``Mean`` of their ``probability`` -> ``probability``."""
    import onnx
    from onnx import compose, helper

    models = [onnx.load(str(p)) for p in member_paths]
    first = models[0]
    shape = [d.dim_value for d in first.graph.input[0].type.tensor_type.shape.dim[1:]]
    for p, m in zip(member_paths, models, strict=True):
        names = ([i.name for i in m.graph.input], [o.name for o in m.graph.output])
        if names != ([INPUT], [OUTPUT]):
            raise ValueError(f"{p}: takes {names[0]} and gives {names[1]}, not [{INPUT!r}] -> [{OUTPUT!r}]")
        if [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim[1:]] != shape:
            raise ValueError(f"{p}: input {m.graph.input[0].type.tensor_type.shape} differs from the first member's")
        if m.opset_import != first.opset_import:
            raise ValueError(f"{p}: opset {m.opset_import} differs from the first member's")
    nodes, inits, vinfo = [], [], []
    for k, m in enumerate(models):
        pm = compose.add_prefix(m, f"m{k}_")
        g = pm.graph
        for n in g.node:
            n.input[:] = [INPUT if i == f"m{k}_{INPUT}" else i for i in n.input]
        nodes.extend(g.node)
        inits.extend(g.initializer)
        vinfo.extend(g.value_info)
    nodes.append(helper.make_node("Mean", [f"m{k}_{OUTPUT}" for k in range(len(models))], [OUTPUT],
                                  name="ensemble_mean"))
    graph = helper.make_graph(nodes, "vhr_texty_ensemble", [first.graph.input[0]], [first.graph.output[0]],
                              initializer=inits, value_info=vinfo)
    merged = helper.make_model(graph, opset_imports=list(first.opset_import), producer_name="amberwatch")
    merged.ir_version = first.ir_version
    onnx.checker.check_model(merged)
    onnx.save(merged, str(out_path))


def average_folds(fold_dirs: list[Path], out_dir: Path | None = None) -> list[dict[str, np.ndarray]]:
    """Per fold: the members' mean test and validation scores (the same chips, checked)."""
    per_member = [sorted(Path(d).glob("fold*.npz")) for d in fold_dirs]
    if not per_member[0] or any(len(m) != len(per_member[0]) for m in per_member):
        raise ValueError(f"every folds folder needs the same fold*.npz files: {[len(m) for m in per_member]}")
    out = []
    for k, paths in enumerate(zip(*per_member, strict=True)):
        fs = [np.load(p) for p in paths]
        for f, p in zip(fs[1:], paths[1:], strict=True):
            if not (np.array_equal(f["test"], fs[0]["test"]) and np.array_equal(f["val"], fs[0]["val"])):
                raise ValueError(f"{p}: other chips than {paths[0]} (not the same folds and splits)")
        fold = {"test": fs[0]["test"], "val": fs[0]["val"],
                **{k: np.mean([f[k] for f in fs], axis=0) for k in ("p_test", "p_val")}}
        out.append(fold)
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            np.savez(out_dir / f"fold{k}.npz", **fold)
    return out


def build(data_dir: Path, member_dirs: list[Path], out_dir: Path, *, fold_dirs: list[Path] | None = None,
          folds_out: Path | None = None, seed: int = 0, rule: str = "f1_bootstrap") -> dict[str, Any]:
    """The merged ``model.onnx``, ``mlm.json`` (the first member's card, new threshold) and ``metrics.json``."""
    from amberwatch.vhr.io import read_rgb
    from amberwatch.vhr.model import load_vhr_model
    from amberwatch_training.vhr.dataset import load_chipset, test_mask, tile_groups, tiles_digest
    from amberwatch_training.vhr.train_effnet import (
        TEXTY_F1,
        _example_tiles,
        _inner_split,
        audited_labels,
        score_saved_folds,
    )

    t0 = time.time()
    chips = load_chipset(Path(data_dir))
    y = chips.labels
    label_sets = {"original": y, "audited": audited_labels(chips)[0]}
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, Any] = {"model": {"name": "vhr-texty", "version": out_dir.name,
                                         "kind": f"mean of {len(member_dirs)} fine-tuned EfficientNet-Lite0",
                                         "members": [str(p) for p in member_dirs]}}
    if fold_dirs:
        metrics["grouped_cv"] = {"folds": len(fold_dirs), "threshold_rule": rule, "label_sets": score_saved_folds(
            chips, average_folds(fold_dirs, folds_out), label_sets, rule)}
    cards = [json.loads((Path(d) / "mlm.json").read_text()) for d in member_dirs]
    member_metrics = [json.loads((Path(d) / "metrics.json").read_text()) for d in member_dirs]
    configs = [m.get("config", {}) for m in member_metrics]
    same = [{k: v for k, v in c.items() if k != "fit_seed_offset"} for c in configs]
    if any(c != same[0] for c in same):
        raise ValueError("the members were trained with different settings (other than the fine-tuning seed)")
    merge_graphs([Path(d) / "model.onnx" for d in member_dirs], out_dir / "model.onnx")
    groups = tile_groups(chips.tiles)
    is_test = test_mask(chips, groups)
    dev, test = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    _, val_i = _inner_split(y[dev], groups[dev], seed)  # the members' shared validation part (train_effnet)
    val = dev[val_i]
    card = cards[0]
    card["properties"]["amberwatch:threshold"] = 0.5  # replaced below, once the graph's validation scores exist
    (out_dir / "mlm.json").write_text(json.dumps(card, indent=2))
    model = load_vhr_model(out_dir)  # probabilities do not depend on the card's threshold
    p_val = model.score_many([read_rgb(chips.paths[i]) for i in val])
    p_test = model.score_many([read_rgb(chips.paths[i]) for i in test])
    thr = choose_threshold(y[val], p_val, rule)
    props = card["properties"]
    props["amberwatch:threshold"] = round(thr, 6)
    props["mlm:total_parameters"] = sum(int(c["properties"].get("mlm:total_parameters", 0)) for c in cards)
    props["mlm:architecture"] = (f"mean of {len(cards)} fine-tuned EfficientNet-Lite0 (seed ensemble, one graph); "
                                 + str(cards[0]["properties"].get("mlm:architecture", "")))
    (out_dir / "mlm.json").write_text(json.dumps(card, indent=2))
    members_val = [load_vhr_model(d).score_many([read_rgb(chips.paths[i]) for i in val]) for d in member_dirs]
    held = {name: chip_metrics(ys[test], p_test, thr) for name, ys in label_sets.items()}
    metrics.update({
        "config": configs[0] | {"fit_seed_offsets": [c.get("fit_seed_offset", 0) for c in configs]},
        "threshold": round(thr, 6),
        "threshold_chosen_on": f"grouped 20 % validation part of the development tiles (8-view TTA), rule {rule}",
        "validation": chip_metrics(y[val], p_val, thr),
        "merged_vs_member_mean_max_abs_diff": float(f"{np.abs(p_val - np.mean(members_val, axis=0)).max():.3g}"),
        "held_out": held["original"] | {"tiles": int(len(set(chips.tiles[test]))),
                                        "tiles_sha256": tiles_digest(chips.tiles[test])},
        "held_out_by_labels": held,
        "onnx": {"bytes": (out_dir / "model.onnx").stat().st_size},
        "texty_f1": TEXTY_F1,
        "weights": member_metrics[0].get("weights"),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.time() - t0, 1),
    })
    metrics["example_tiles"] = _example_tiles(data_dir, out_dir)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    return metrics


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--members", type=Path, nargs="+", help="registered member folders (model.onnx, mlm.json, "
                    "metrics.json)")
    ap.add_argument("--out", type=Path, help="folder for the merged CNN")
    ap.add_argument("--folds", type=Path, nargs="+", help="the members' --save-folds folders (grouped CV)")
    ap.add_argument("--folds-out", type=Path, help="write the averaged folds here (for stack_head --folds)")
    ap.add_argument("--threshold-rule", choices=("f1", "f1_bootstrap"), default="f1_bootstrap")
    a = ap.parse_args(argv)
    if a.members:
        if a.out is None:
            ap.error("--members needs --out")
        m = build(a.data, a.members, a.out, fold_dirs=a.folds, folds_out=a.folds_out, rule=a.threshold_rule)
        print(json.dumps({k: m[k] for k in ("grouped_cv", "threshold", "held_out_by_labels", "example_tiles")
                          if k in m}, indent=2, default=float))
        return
    if not a.folds:
        ap.error("give --folds (grouped CV only) and/or --members with --out")
    from amberwatch_training.vhr.dataset import load_chipset
    from amberwatch_training.vhr.train_effnet import audited_labels, score_saved_folds

    chips = load_chipset(a.data)
    sets = {"original": chips.labels, "audited": audited_labels(chips)[0]}
    print(json.dumps(score_saved_folds(chips, average_folds(a.folds, a.folds_out), sets, a.threshold_rule), indent=2,
                     default=float))


if __name__ == "__main__":
    main()
