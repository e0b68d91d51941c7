"""False objects per confuser kind and season, recall on the control sites, and the U-Net / RF / ensemble ablation.

The U-Net runs through the service's own onnxruntime path (``amberwatch.detect.session``: ``create_session`` +
``ModelRunner``) and objects come from the service's decision rule (``amberwatch.detect.decision``).  An object
(8-connected, >= the 0.05 ha minimum mapping unit) that touches the control site counts as finding it; one that
touches no site but touches the confuser is a **false object on the confuser**; the rest are false objects on
the real background of the chip.

Run: ``python -m amberwatch_training.confuser_eval models/registry/s2-unet/1.2.0 --per-kind 8``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from amberwatch.detect.confusers_rule import (
    ContextRule,
    context_window,
    elongation,
    filter_class_map,
    ring_water_share,
    water_mask,
)
from amberwatch.detect.decision import DecisionRule, object_class_map
from amberwatch.detect.session import ModelRunner, create_session

from . import confusers, evaluate, synth
from .export import predict
from .pixel_rf import PixelRF
from .scenes import Scene

EIGHT = np.ones((3, 3), bool)
# unet+water: U-Net, then the (rejected) water-context rule; +context: then the natural-sand rule
# (amberwatch.detect.confusers_rule) with CONTEXT_RULE, whose thresholds were chosen on the validation split
VARIANTS = ("unet", "rf", "mean", "and", "unet+water", "unet+context", "mean+context")
CONTEXT_RULE = ContextRule()
RULES = [DecisionRule(t, c) for t in (0.3, 0.5, 0.7) for c in (0.0, 0.6, 0.8, 0.9)]


def count_objects(cls: np.ndarray, site_ids: np.ndarray, scorable: set[int], confuser: np.ndarray,
                  min_px: int) -> dict[str, Any]:
    """Objects of a class map: sites found (of ``scorable``), false objects on the confuser and elsewhere."""
    comps, n = ndimage.label(cls > 0, structure=EIGHT)
    sizes = np.bincount(comps.ravel(), minlength=n + 1)
    near_conf = ndimage.binary_dilation(confuser, structure=EIGHT)
    found: set[int] = set()
    objects = on_conf = elsewhere = 0
    for i, sl in enumerate(ndimage.find_objects(comps), start=1):
        if sl is None or sizes[i] < min_px:
            continue
        sl = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in sl)
        obj = ndimage.binary_dilation(comps[sl] == i, structure=EIGHT)
        hit = set(np.unique(site_ids[sl][obj]).tolist()) - {0}
        objects += 1
        if hit:
            found |= hit
        elif (obj & near_conf[sl]).any():
            on_conf += 1
        else:
            elsewhere += 1
    return {"objects": objects, "found": len(found & scorable), "sites": len(scorable),
            "false_on_confuser": on_conf, "false_elsewhere": elsewhere}


def combine(p_unet: np.ndarray, p_rf: np.ndarray | None, variant: str) -> np.ndarray:
    """uint8 [2, H, W] pit/pond probabilities (x255) of a variant: the U-Net, the RF, their mean, or AND (min).
    Ensembles keep the U-Net's pit/pond split of the combined mining probability."""
    variant = variant.split("+")[0]
    if variant == "unet" or p_rf is None:
        p = p_unet[1:]
    elif variant == "rf":
        p = p_rf[1:]
    else:
        mu, mr = p_unet[1:].sum(0), p_rf[1:].sum(0)
        m = 0.5 * (mu + mr) if variant == "mean" else np.minimum(mu, mr)
        share = p_unet[1] / np.maximum(mu, 1e-6)
        p = np.stack([m * share, m * (1 - share)])
    return np.rint(np.clip(p, 0, 1) * 255).astype(np.uint8)


BIG_WATER_HA = 10.0  # a lake or river, not a mining pond (simulated ponds are at most ~2 ha)
MAX_WATER_SHARE = 0.3


def big_water(stack: np.ndarray, res: float = 10.0) -> np.ndarray:
    """Pixels of water bodies (NDWI green/NIR > 0.1, as the scene's water mask) of at least BIG_WATER_HA."""
    lab, k = ndimage.label(water_mask(stack[1], stack[6], 0.1))
    big = np.bincount(lab.ravel(), minlength=k + 1) * res * res / 10_000 >= BIG_WATER_HA
    big[0] = False
    return big[lab]


def water_context_filter(cls: np.ndarray, big: np.ndarray, max_share: float = MAX_WATER_SHARE) -> np.ndarray:
    """Index rule: drop objects whose 2-pixel ring is mostly (> ``max_share``) a large natural water body
    (sandbars, beaches); mining ponds are part of their object and small, so they never count."""
    comps, n = ndimage.label(cls > 0, structure=EIGHT)
    out = cls.copy()
    for i, sl in enumerate(ndimage.find_objects(comps), start=1):
        if sl is None:
            continue
        sl = tuple(slice(max(0, s.start - 2), s.stop + 2) for s in sl)
        obj = comps[sl] == i
        ring = ndimage.binary_dilation(obj, structure=EIGHT, iterations=2) & ~obj
        if ring.any() and big[sl][ring].mean() > max_share:
            out[sl][obj] = 0
    return out


@dataclass
class Case:
    """Model outputs of one chip or region rendering, kept to score many rules and variants."""

    kind: str  # confuser kind, or "region"
    season: str
    split: str
    p_unet: np.ndarray
    p_rf: np.ndarray | None
    site_ids: np.ndarray
    scorable: set[int]
    confuser: np.ndarray
    km2: float
    big_water: np.ndarray | None = None  # natural water bodies >= BIG_WATER_HA in the window (from the image)
    water: np.ndarray | None = None  # NDWI water mask of the context rule (confusers_rule.water_mask)


def make_case(kind: str, season: str, split: str, r: synth.Rendered, confuser: np.ndarray, runner: ModelRunner,
              rf: PixelRF | None) -> Case:
    p_unet = predict(runner.session, r.stack, 8)
    p_rf = rf(r.stack) if rf is not None else None
    scorable = set(np.unique(r.site_ids[r.label > 0]).tolist()) - {0}
    return Case(kind, season, split, p_unet, p_rf, r.site_ids, scorable, confuser, r.label.size / 10_000,
                big_water(r.stack), water_mask(r.stack[1], r.stack[6], CONTEXT_RULE.ndwi_water))


def score_cases(cases: list[Case], variant: str, rule: DecisionRule | dict[str, DecisionRule],
                min_px: int = 5) -> dict[str, Any]:
    """Pooled counts and object precision/recall/F1 (``rule`` may be a rule per season)."""
    tot = {"objects": 0, "found": 0, "sites": 0, "false_on_confuser": 0, "false_elsewhere": 0, "km2": 0.0, "n": 0}
    for c in cases:
        ru = rule[c.season] if isinstance(rule, dict) else rule
        cls = object_class_map(combine(c.p_unet, c.p_rf, variant), ru)
        if variant == "unet+water" and c.big_water is not None:
            cls = water_context_filter(cls, c.big_water)
        if variant.endswith("+context") and c.water is not None:
            cls = filter_class_map(cls, c.water, CONTEXT_RULE)
        for k, v in count_objects(cls, c.site_ids, c.scorable, c.confuser, min_px).items():
            tot[k] += v
        tot["km2"] += c.km2
        tot["n"] += 1
    false = tot["false_on_confuser"] + tot["false_elsewhere"]
    precision, recall, f1 = object_prf(tot["objects"], false, tot["found"], tot["sites"])
    return tot | {"precision": precision, "recall": recall, "f1": f1}


def object_prf(objects: int, false: int, found: int, sites: int) -> tuple[float, float, float]:
    """Object precision, recall and F1 of pooled counts."""
    precision, recall = (objects - false) / max(1, objects), found / max(1, sites)
    return precision, recall, 2 * precision * recall / max(1e-9, precision + recall)


def choose(cases: list[Case], variant: str) -> tuple[DecisionRule, float]:
    """Best rule by pooled object F1 on validation cases."""
    scored = [(score_cases(cases, variant, r)["f1"], r) for r in RULES]
    f1, rule = max(scored, key=lambda t: t[0])
    return rule, f1


CONTEXT_GRID = {  # thresholds of the natural-sand rule searched on validation (ring, water body, window fixed)
    "min_ring_water": (0.1, 0.15, 0.2, 0.3, 0.4, 0.5),
    "max_pond_share": (0.0, 0.05, 0.1, 0.15, 0.2),
    "min_elongation": (1.0, 1.5, 2.0),
}


def choose_context_rule(cases: list[Case], rule: DecisionRule, min_px: int = 5) -> tuple[ContextRule, list[dict]]:
    """The natural-sand rule with the best pooled object F1 on validation ``cases`` (U-Net, ``rule``); ties go to
    the rule that drops the fewest validation objects (the most conservative). Object features are computed once."""
    base = ContextRule()
    objs = []  # (case index, (pond share, elongation, ring water share), site ids touched) per object
    for j, c in enumerate(cases):
        cls = object_class_map(combine(c.p_unet, c.p_rf, "unet"), rule)
        comps, _ = ndimage.label(cls > 0, structure=EIGHT)
        for i, sl in enumerate(ndimage.find_objects(comps), start=1):
            if sl is None:
                continue
            win = context_window(sl[0], sl[1], cls.shape, base.context_px)
            obj = comps[win] == i
            if obj.sum() < min_px:
                continue
            touch = ndimage.binary_dilation(obj, structure=EIGHT)
            hit = set(np.unique(c.site_ids[win][touch]).tolist()) - {0}
            assert c.water is not None
            features = (float((cls[win][obj] == 2).mean()), elongation(obj),
                        ring_water_share(obj, c.water[win], base, 0.01))
            objs.append((j, features, hit))
    sites = sum(len(c.scorable) for c in cases)
    table = []
    for ring in CONTEXT_GRID["min_ring_water"]:
        for pond in CONTEXT_GRID["max_pond_share"]:
            for el in CONTEXT_GRID["min_elongation"]:
                found: set[tuple[int, int]] = set()
                kept = false = 0
                for j, (p, e, w), hit in objs:
                    if p <= pond and e >= el and w >= ring:
                        continue
                    kept += 1
                    false += not hit
                    found |= {(j, s) for s in hit if s in cases[j].scorable}
                table.append({"min_ring_water": ring, "max_pond_share": pond, "min_elongation": el,
                              "objects": kept, "false": false, "found": len(found), "sites": sites,
                              "f1": round(object_prf(kept, false, len(found), sites)[2], 5)})
    best = max(table, key=lambda t: (t["f1"], t["objects"], t["min_ring_water"], -t["max_pond_share"],
                                     t["min_elongation"]))
    chosen = ContextRule(max_pond_share=best["max_pond_share"], min_elongation=best["min_elongation"],
                         min_ring_water=best["min_ring_water"])
    return chosen, table


def region_cases(scene: Scene, summer: Scene, split: str, n: int, runner: ModelRunner, rf: PixelRF | None,
                 seed: int) -> list[Case]:
    out = []
    for season, sc in (("winter", scene), ("late_summer", summer)):
        for i in range(n):
            r = evaluate.region_scenario(sc, split, seed + i).rendered
            out.append(make_case("region", season, split, r, r.negative, runner, rf))
    return out


def run(model_dir: Path, per_kind: int = 8, region_renderings: int = 2, rf_chips: int = 200,
        rf_path: Path | None = None, kinds: tuple[str, ...] = confusers.KINDS, progress: bool = True) -> dict[str, Any]:
    """Build the confuser set, train/export the pixel RF, score every variant; return the full report."""
    from . import pixel_rf
    from .dataset import chip_bank
    from .scenes import load_sentinel2

    t0 = time.time()
    log = (lambda m: print(f"[{time.time() - t0:6.0f} s] {m}", flush=True)) if progress else (lambda m: None)
    model_dir = Path(model_dir)
    card = json.loads((model_dir / "mlm.json").read_text())
    card_rule = DecisionRule.from_card(card.get("properties", {}))
    session, provider = create_session(model_dir / "model.onnx", ["CPUExecutionProvider"], threads=1)
    runner = ModelRunner(session, provider)
    scene = load_sentinel2()
    summer = confusers.late_summer_scene(scene)
    rf_path = rf_path or Path.home() / ".cache" / "amberwatch_training" / "s2-pixel-rf.onnx"
    rf_path.parent.mkdir(parents=True, exist_ok=True)
    x, y = chip_bank("sentinel2", "train", rf_chips, seed=31, workers=1, negatives="confuser-boost")
    log(f"RF training on {len(x)} training-region chips")
    pixel_rf.export(pixel_rf.train(x, y), rf_path)
    rf = PixelRF(rf_path)
    chips = confusers.build_set(scene, per_kind, kinds=kinds, summer=summer)
    log(f"{len(chips)} confuser chips rendered")
    cases = [make_case(c.kind, c.season, c.split, c.rendered, c.confuser, runner, rf) for c in chips]
    log("models run on the chips")
    val_regions = region_cases(scene, summer, "val", region_renderings, runner, rf, evaluate.VALIDATION_SEED)
    test_regions = region_cases(scene, summer, "test", region_renderings, runner, rf, 9_000)
    log("models run on the region renderings")
    val = [c for c in cases if c.split == "val"] + val_regions
    test_chips = [c for c in cases if c.split == "test"]
    context_rule, context_table = choose_context_rule(val, card_rule)
    if context_rule != CONTEXT_RULE:
        log(f"note: validation now chooses {context_rule}, the registered rule is {CONTEXT_RULE}")

    ablation = {}
    for v in VARIANTS:
        rule, _ = choose(val, v)
        ablation[v] = {"rule": rule.as_dict(),
                       "val": _short(score_cases(val, v, rule)),
                       "test_confusers": _short(score_cases(test_chips, v, rule)),
                       "test_region": _short(score_cases(test_regions, v, rule))}
    best = max(VARIANTS, key=lambda v: (ablation[v]["val"]["f1"], v == "unet"))
    # per-season rules for the kept variant, chosen on the validation cases of each season
    season_rules = {s: choose([c for c in val if c.season == s], best)[0] for s in confusers.SEASONS}
    per_season = {"rules": {s: r.as_dict() for s, r in season_rules.items()},
                  "val": _short(score_cases(val, best, season_rules)),
                  "test_confusers": _short(score_cases(test_chips, best, season_rules)),
                  "test_region": _short(score_cases(test_regions, best, season_rules))}
    table = {}
    for kind in kinds:
        for season in confusers.SEASONS:
            sub = [c for c in test_chips if c.kind == kind and c.season == season]
            s = score_cases(sub, "unet", card_rule)
            after = score_cases(sub, "unet+context", card_rule)
            table[f"{kind}/{season}"] = {
                "confusers": len(sub), "false_objects": s["false_on_confuser"],
                "per_100_confusers": 100 * s["false_on_confuser"] / max(1, len(sub)),
                "confusers_flagged": sum(score_cases([c], "unet", card_rule)["false_on_confuser"] > 0 for c in sub),
                "false_elsewhere": s["false_elsewhere"], "chip_km2": round(s["km2"], 2),
                "control_found": s["found"], "control_sites": s["sites"],
                "false_objects_context_rule": after["false_on_confuser"], "control_found_context_rule": after["found"],
                "spectrum_source": confusers.SPECTRUM_SOURCE[kind],
                "false_objects_by_variant": {v: score_cases(sub, v, DecisionRule(**ablation[v]["rule"]))
                                             ["false_on_confuser"] for v in VARIANTS}}
    log("scored")
    return {"model": str(model_dir), "card_rule": card_rule.as_dict(), "per_kind": per_kind,
            "chip_px": confusers.CHIP, "region_renderings_per_season": region_renderings,
            "false_objects_unet_card_rule": table,
            "test_confusers_unet_card_rule": _short(score_cases(test_chips, "unet", card_rule)),
            "ablation": ablation, "kept_variant": best, "per_season_rules": per_season,
            "test_confusers_unet_context_rule": _short(score_cases(test_chips, "unet+context", card_rule)),
            "context_rule": {"registered": CONTEXT_RULE.as_dict(), "chosen_on_validation": context_rule.as_dict(),
                             "search": context_table},
            "rf": {"onnx": str(rf_path), "training_chips": int(len(x)), "features": list(pixel_rf.FEATURE_NAMES)},
            "seconds": round(time.time() - t0, 1)}


def _short(s: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in s.items()}


def markdown(rep: dict[str, Any]) -> str:
    """The two tables of the report as Markdown."""
    lines = ["| kind | season | confusers | false objects | per 100 confusers | confusers flagged | "
             "control sites found | false objects / control sites found with the context rule | spectra | "
             f"false objects {' / '.join(VARIANTS)} (val rules) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for key, r in rep["false_objects_unet_card_rule"].items():
        kind, season = key.split("/")
        lines.append(f"| {kind} | {season} | {r['confusers']} | {r['false_objects']} | {r['per_100_confusers']:.0f} | "
                     f"{r['confusers_flagged']} | {r['control_found']}/{r['control_sites']} | "
                     f"{r['false_objects_context_rule']} / {r['control_found_context_rule']}/{r['control_sites']} | "
                     f"{r['spectrum_source'].split(':')[0]} | "
                     f"{' / '.join(str(r['false_objects_by_variant'][v]) for v in VARIANTS)} |")
    lines += ["", "| variant | rule (val) | val P / R / F1 | confuser set P / R / F1 | false on confusers | "
              "test region P / R / F1 |", "|---|---|---|---|---|---|"]
    seasonal = rep["per_season_rules"] | {"rule": rep["per_season_rules"]["rules"]}
    rows = [*rep["ablation"].items(), (f"{rep['kept_variant']} + per-season rules", seasonal)]
    for v, a in rows:
        rule = a["rule"]
        rtxt = (" / ".join(f"{s}: {r['pixel_threshold']}/{r['min_object_confidence']}" for s, r in rule.items())
                if "pixel_threshold" not in rule else f"{rule['pixel_threshold']} / {rule['min_object_confidence']}")

        def prf(s: dict[str, Any]) -> str:
            return f"{s['precision']:.3f} / {s['recall']:.3f} / {s['f1']:.3f}"

        lines.append(f"| {v} | {rtxt} | {prf(a['val'])} | {prf(a['test_confusers'])} | "
                     f"{a['test_confusers']['false_on_confuser']} | {prf(a['test_region'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Confuser set evaluation of a Sentinel-2 model (+ RF ablation).")
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--per-kind", type=int, default=8, help="chips per kind, season and split")
    ap.add_argument("--region-renderings", type=int, default=2, help="val/test strip renderings per season")
    ap.add_argument("--rf-chips", type=int, default=200, help="training-region chips for the pixel RF")
    ap.add_argument("--out", type=Path, default=None, help="JSON report (default: <model_dir>/confusers.json)")
    a = ap.parse_args(argv)
    rep = run(a.model_dir, a.per_kind, a.region_renderings, a.rf_chips)
    out = a.out or a.model_dir / "confusers.json"
    out.write_text(json.dumps(rep, indent=2))
    print(markdown(rep))


if __name__ == "__main__":
    main()
