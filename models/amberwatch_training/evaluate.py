"""Held-out evaluation of an exported model: pixel IoU, object precision/recall/F1, false-positive areas.

The test data are the held-out region of each real scene (east 20 %), rendered several times with fresh simulated
sites, confusers and clouds (seeds different from training).  A true site counts as found when a predicted object
touches it (8-neighbourhood); a predicted object is false when it touches no simulated site.  Sites whose mining
area never fills half of a model pixel have no labelled pixel ("unscorable"): they are not counted in recall and a
prediction touching them is not counted as false.  A stricter precision also counts as false the objects that
touch a site but have less than 25 % of their pixels within 2 pixels of any site (a huge blob over a site).

Predictions become objects with the service's own decision rule (``amberwatch.detect.decision``); the rule's two
numbers are chosen on the validation region (``choose_rule``), never on the test region, and stored in the card.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from amberwatch.detect.confusers_rule import ContextRule, filter_class_map, water_mask
from amberwatch.detect.decision import CARD_KEY, DecisionRule, object_class_map

from . import synth
from .export import predict, session
from .scenes import Scene, load_scene

EIGHT = np.ones((3, 3), bool)
SCENARIO = {  # per realization of a held-out region: (sites, confusers)
    "sentinel2": (16, 30),
    "landsat": (14, 24),
}


@dataclass
class Scenario:
    rendered: synth.Rendered
    seed: int


def region_scenario(scene: Scene, region: str, seed: int, clouds: bool = True) -> Scenario:
    """Render the whole region strip with sites, confusers and (optionally) synthetic clouds."""
    rng = np.random.default_rng(seed)
    reg = synth.split_regions(scene)[region]
    k = synth.coarse_factor(scene)
    h = scene.shape[0] // k * k
    window = (0, reg.col0, h, reg.col1 - reg.col0)
    n_sites, n_neg = SCENARIO[scene.family]
    feats = synth.populate(rng, scene, window, n_sites, n_neg)
    cl = synth.make_clouds(rng, (h, reg.col1 - reg.col0), scene.res) if clouds else None
    return Scenario(synth.render_tiled(scene, window, feats, cl), seed)


def min_object_pixels(res: float, min_ha: float = 0.05) -> int:
    """Smallest predicted object kept (the service's default minimum mapping unit 0.05 ha)."""
    return max(1, int(np.ceil(min_ha * 10_000 / res**2)))


def score(pred: np.ndarray, r: synth.Rendered, res: float, min_px: int) -> dict[str, Any]:
    """Counts for one realization: pixel confusion, objects, false-positive areas."""
    label = r.label
    conf = np.bincount(label.ravel().astype(int) * 3 + pred.ravel().astype(int), minlength=9).reshape(3, 3)
    mining = pred > 0
    comps, n = ndimage.label(mining, structure=EIGHT)
    sizes = np.bincount(comps.ravel(), minlength=n + 1)
    keep = sizes >= min_px
    keep[0] = False
    kept = keep[comps]
    comps = np.where(kept, comps, 0)
    footprint = r.site_ids > 0
    scorable = set(np.unique(r.site_ids[label > 0]).tolist()) - {0}
    all_sites = set(np.unique(r.site_ids).tolist()) - {0}
    found: set[int] = set()
    false_obj = 0
    loose_obj = 0  # touches a site but mostly lies outside any site (e.g. one huge blob over everything)
    n_obj = 0
    near = ndimage.binary_dilation(footprint, structure=EIGHT, iterations=2)
    for i, sl in enumerate(ndimage.find_objects(comps), start=1):
        if sl is None:
            continue
        sl = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in sl)
        obj = ndimage.binary_dilation(comps[sl] == i, structure=EIGHT)
        hit = set(np.unique(r.site_ids[sl][obj & footprint[sl]]).tolist()) - {0}
        n_obj += 1
        found |= hit
        if not hit:
            false_obj += 1
        elif (comps[sl][obj & near[sl]] == i).sum() < 0.25 * sizes[i]:
            loose_obj += 1
    sites = sorted(scorable)
    cloud_share = ndimage.mean(r.cloud, r.site_ids, sites) if sites else []
    clear = {s for s, share in zip(sites, cloud_share, strict=True) if share <= 0.5}  # at most half under cloud
    px_ha = res * res / 10_000
    outside = kept & ~ndimage.binary_dilation(footprint, structure=EIGHT)
    return {
        "confusion": conf, "sites": len(scorable), "sites_all": len(all_sites), "found": len(found & scorable),
        "sites_clear": len(clear), "found_clear": len(found & clear),
        "objects": n_obj, "false_objects": false_obj, "loose_objects": loose_obj,
        "fp_ha_negatives": float((outside & r.negative).sum() * px_ha),
        "fp_ha_clouds": float((outside & r.cloud & ~r.negative).sum() * px_ha),
        "fp_ha_other": float((outside & ~r.cloud & ~r.negative).sum() * px_ha),
        "area_km2": float(label.size * px_ha / 100), "negative_ha": float(r.negative.sum() * px_ha),
        "cloud_ha": float(r.cloud.sum() * px_ha),
    }


def summarize(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool realization counts into the reported metrics."""
    conf = sum(p["confusion"] for p in parts)
    iou = {}
    for c, name in enumerate(("background", "pit", "pond")):
        tp = conf[c, c]
        iou[name] = float(tp / max(1, conf[c, :].sum() + conf[:, c].sum() - tp))
    mtp = conf[1:, 1:].sum()
    iou["mining"] = float(mtp / max(1, conf[1:, :].sum() + conf[:, 1:].sum() - mtp))
    sites = sum(p["sites"] for p in parts)
    found = sum(p["found"] for p in parts)
    objects = sum(p["objects"] for p in parts)
    false_obj = sum(p["false_objects"] for p in parts)
    recall = found / max(1, sites)
    clear_sites, clear_found = sum(p["sites_clear"] for p in parts), sum(p["found_clear"] for p in parts)
    precision = (objects - false_obj) / max(1, objects)
    f1 = 2 * precision * recall / max(1e-9, precision + recall)
    loose = sum(p["loose_objects"] for p in parts)
    precision_strict = (objects - false_obj - loose) / max(1, objects)
    f1_strict = 2 * precision_strict * recall / max(1e-9, precision_strict + recall)
    area = sum(p["area_km2"] for p in parts)
    return {
        "pixel_iou": iou,
        "mean_iou_pit_pond": (iou["pit"] + iou["pond"]) / 2,
        "object_precision": precision, "object_recall": recall, "object_f1": f1,
        "object_recall_clear_sky": clear_found / max(1, clear_sites),
        "sites_clear_sky": clear_sites, "sites_clear_sky_found": clear_found,
        "sites_scorable": sites, "sites_total": sum(p["sites_all"] for p in parts), "sites_found": found,
        "object_precision_strict": precision_strict, "object_f1_strict": f1_strict,
        "predicted_objects": objects, "false_objects": false_obj, "loose_objects": loose,
        "fp_ha_on_hard_negatives": sum(p["fp_ha_negatives"] for p in parts),
        "hard_negative_area_ha": sum(p["negative_ha"] for p in parts),
        "fp_ha_on_clouds": sum(p["fp_ha_clouds"] for p in parts),
        "cloud_area_ha": sum(p["cloud_ha"] for p in parts),
        "fp_ha_elsewhere": sum(p["fp_ha_other"] for p in parts),
        "evaluated_km2": area,
        "false_objects_per_100km2": 100 * false_obj / max(1e-9, area),
    }


RULE_GRID = {  # candidate decision rules, searched on the validation region only
    "pixel_threshold": (0.3, 0.4, 0.5, 0.6, 0.7),
    "min_object_confidence": (0.0, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95),
}
VALIDATION_SEED = 5_000
VALIDATION_REALIZATIONS = 24


def region_predictions(model_dir: Path, family: str, region: str, realizations: int, seed: int,
                       scene: Scene | None = None) -> list[tuple[np.ndarray, synth.Rendered]]:
    """(uint8 [2, H, W] pit/pond probabilities x255, rendering) for each realization of a region."""
    model_dir = Path(model_dir)
    card = json.loads((model_dir / "mlm.json").read_text()) if (model_dir / "mlm.json").exists() else {}
    multiple = int(card.get("properties", {}).get("amberwatch:input_multiple", 8))
    scene = scene or load_scene(family)
    sess = session(model_dir / "model.onnx")
    out = []
    for i in range(realizations):
        sc = region_scenario(scene, region, seed + i)
        prob = predict(sess, sc.rendered.stack, multiple)
        out.append((np.round(prob[1:] * 255).astype(np.uint8), sc.rendered))
    return out


def score_rule(preds: list[tuple[np.ndarray, synth.Rendered]], rule: DecisionRule, res: float,
               context: ContextRule | None = None) -> dict[str, Any]:
    """Pooled metrics of the service's decision rule (then the card's natural-sand ``context`` rule, if any, as
    the service applies it: ``amberwatch.detect.confusers_rule``) on cached predictions."""
    min_px = min_object_pixels(res)

    def objects(p: np.ndarray, r: synth.Rendered) -> np.ndarray:
        cls = object_class_map(p, rule)
        if context is None:
            return cls
        water = water_mask(r.stack[r.bands.index("green")], r.stack[r.bands.index("nir")], context.ndwi_water)
        return filter_class_map(cls, water, context, res * res / 10_000)

    return summarize([score(objects(p, r), r, res, min_px) for p, r in preds])


def choose_rule(model_dir: Path, family: str, realizations: int = VALIDATION_REALIZATIONS, seed: int = VALIDATION_SEED,
                scene: Scene | None = None) -> tuple[DecisionRule, list[dict[str, Any]]]:
    """The decision rule with the best object F1 on the validation region (ties: the higher pixel IoU)."""
    scene = scene or load_scene(family)
    preds = region_predictions(model_dir, family, "val", realizations, seed, scene)
    rules = [DecisionRule(t, c) for t in RULE_GRID["pixel_threshold"] for c in RULE_GRID["min_object_confidence"]]
    table = []
    for rule in rules:
        m = score_rule(preds, rule, scene.res)
        table.append(rule.as_dict() | {
            "object_f1": round(m["object_f1"], 4), "object_precision": round(m["object_precision"], 4),
            "object_recall": round(m["object_recall"], 4), "mining_iou": round(m["pixel_iou"]["mining"], 4)})
    best = max(range(len(rules)), key=lambda i: (table[i]["object_f1"], table[i]["mining_iou"]))
    return rules[best], table


def evaluate(model_dir: Path, family: str, region: str = "test", realizations: int = 6, seed: int = 9_000,
             scene: Scene | None = None, save_cases: Path | None = None,
             rule: DecisionRule | None = None) -> dict[str, Any]:
    """Evaluate ``model_dir/model.onnx`` on ``realizations`` renderings of a held-out region of the real scene,
    with ``rule`` (default: the card's ``amberwatch:decision``); also reports the plain rule (0.5, 0.0)."""
    model_dir = Path(model_dir)
    card = json.loads((model_dir / "mlm.json").read_text()) if (model_dir / "mlm.json").exists() else {}
    rule = rule or DecisionRule.from_card(card.get("properties", {}))
    context = ContextRule.from_card(card.get("properties", {}))
    scene = scene or load_scene(family)
    preds = region_predictions(model_dir, family, region, realizations, seed, scene)
    out = score_rule(preds, rule, scene.res, context)
    plain = score_rule(preds, DecisionRule(), scene.res, context)
    if save_cases is not None and preds:
        from .figures import save_case_images

        save_case_images(preds[0][1], object_class_map(preds[0][0], rule), save_cases, family)
    out.update({"family": family, "region": region, "realizations": realizations, "seed": seed,
                "min_object_pixels": min_object_pixels(scene.res),
                "decision_rule": rule.as_dict(), "context_rule": context.as_dict() if context else None,
                "plain_rule_0.5_0.0": {k: plain[k] for k in ("object_precision", "object_recall", "object_f1")}
                | {"mining_iou": plain["pixel_iou"]["mining"]}})
    return out


def write_metrics(model_dir: Path, family: str, realizations: int = 12, seed: int = 9_000,
                  figures: Path | None = None, choose: bool = True) -> dict[str, Any]:
    """Choose the decision rule on the validation region (``choose``), then re-evaluate on the test region;
    store both in metrics.json, the rule in mlm.json ``amberwatch:decision`` and the metrics in its properties."""
    model_dir = Path(model_dir)
    mpath, cpath = model_dir / "metrics.json", model_dir / "mlm.json"
    metrics = json.loads(mpath.read_text()) if mpath.exists() else {}
    card = json.loads(cpath.read_text())
    if choose:
        rule, table = choose_rule(model_dir, family)
        card["properties"][CARD_KEY] = rule.as_card(
            f"best object F1 on {VALIDATION_REALIZATIONS} renderings of the validation region "
            f"(seed {VALIDATION_SEED}); test never used")
        cpath.write_text(json.dumps(card, indent=2))
        metrics["decision_rule_search"] = table
    test = evaluate(model_dir, family, "test", realizations, seed, save_cases=figures)
    metrics["test"] = test
    mpath.write_text(json.dumps(metrics, indent=2))
    card["properties"]["metrics"] = metrics
    cpath.write_text(json.dumps(card, indent=2))
    return test


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Evaluate a registry model on the held-out region (writes metrics).")
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--family", required=True, choices=["sentinel2", "landsat"])
    ap.add_argument("--realizations", type=int, default=12)
    ap.add_argument("--figures", type=Path, default=None, help="folder for failure-case PNGs")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--keep-rule", action="store_true", help="keep the card's decision rule (no validation search)")
    a = ap.parse_args(argv)
    if a.no_write:
        out = evaluate(a.model_dir, a.family, "test", a.realizations, save_cases=a.figures)
    else:
        out = write_metrics(a.model_dir, a.family, a.realizations, figures=a.figures, choose=not a.keep_rule)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
