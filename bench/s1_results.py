"""Sentinel-1 results on the real crops of ../shared/data/sentinel1 (the numbers and pictures of docs/sentinel1.md).

Prints markdown tables: water thresholds per acquisition (Otsu, clamped), water fraction and median backscatter of
sea and land bursts, the Camargue ponds, and the log-ratio change statistics of date pairs (robust sigma, threshold,
changed fractions). ``--img DIR`` writes docs/img/s1-camargue.png and docs/img/s1-opera-change.png.

    .venv/bin/python bench/s1_results.py --img docs/img
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _common import SHARED_DATA

from amberwatch.ingest.sentinel1 import ingest_s1
from amberwatch.sar.change import CHANGE_CLASSES, change_map
from amberwatch.sar.water import WaterModel, filtered_db, learn_thresholds, water_mask

DATA = SHARED_DATA / "sentinel1"
REGISTRY = Path(__file__).resolve().parents[1] / "models" / "registry" / "s1-water" / "1.0.0" / "model.onnx"
OPERA = DATA / "opera-rtc-s1-dist-s1" / "10SGD" / "137"
POND, LAND_WINDOW = (slice(80, 100), slice(110, 150)), (slice(0, 40), slice(0, 40))
SEA, LAND = "T137-292321-IW1", "T137-292321-IW2"
COLOURS = {0: (90, 90, 90), 1: (40, 120, 255), 2: (255, 150, 0), 3: (220, 30, 30), 4: (60, 200, 60), 255: (0, 0, 0)}


def grey(db: np.ndarray, lo: float = -25.0, hi: float = 0.0) -> np.ndarray:
    v = (np.clip((np.nan_to_num(db, nan=lo) - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    return np.stack([v, v, v], axis=-1)


def save(panels: list[np.ndarray], path: Path, scale: int) -> None:
    from PIL import Image

    gap = np.full((panels[0].shape[0], 4, 3), 255, dtype=np.uint8)
    row = np.concatenate([x for p in panels for x in (p, gap)][:-1], axis=1)
    img = Image.fromarray(row)
    img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    img.quantize(48).save(path, optimize=True)  # a palette keeps the picture small


def camargue(model: WaterModel, img: Path | None) -> None:
    scene = ingest_s1(next((DATA / "pyrosar-gamma-geo-vv").glob("*_db.tif")))
    db = filtered_db(scene)
    thr = learn_thresholds([db])
    water = water_mask(model.probability(db, thr))
    vv = db["VV"]
    print("\n## Camargue (GAMMA VV GRD, 2015-03-09, 268 x 217 px at 20 m)\n")
    print("| measure | value |\n|---|---|")
    print(f"| VV threshold (dB) | {thr.db['VV']:.2f} ({thr.how['VV']}) |")
    print(f"| water fraction, whole scene | {water.mean():.3f} |")
    print(f"| water fraction, pond window rows 80-99 x cols 110-149 | {water[POND].mean():.3f} |")
    print(f"| water fraction, field window rows 0-39 x cols 0-39 | {water[LAND_WINDOW].mean():.3f} |")
    print(f"| median VV (dB): pond window / field window | {np.nanmedian(vv[POND]):.1f} / "
          f"{np.nanmedian(vv[LAND_WINDOW]):.1f} |")
    if img:
        over = grey(scene.db("VV"))
        over[water] = (0.4 * over[water] + 0.6 * np.array([40, 120, 255])).astype(np.uint8)
        save([grey(scene.db("VV")), grey(vv), over], img / "s1-camargue.png", 1)


def opera(model: WaterModel, img: Path | None) -> None:
    dates = sorted(p.name for p in OPERA.iterdir() if p.is_dir())
    per: dict[str, tuple[dict, dict]] = {}
    print("\n## OPERA RTC-S1 (gamma0, 15 bursts x VV/VH per date, 100 x 100 px at 30 m)\n")
    print("| date | VV thr (dB) | VH thr (dB) | sea burst water | land burst water | sea VV/VH median | "
          "land VV/VH median |\n|---|---|---|---|---|---|---|")
    for date in dates:
        dbs = {f.name.split("_")[3]: filtered_db(ingest_s1(f)) for f in sorted((OPERA / date).glob("*_VV.tif"))}
        thr = learn_thresholds(list(dbs.values()))
        water = {b: water_mask(model.probability(d, thr)) for b, d in dbs.items()}
        per[date] = (dbs, water)
        s, land = dbs[SEA], dbs[LAND]
        print(f"| {date} | {thr.db['VV']:.1f} ({thr.how['VV']}) | {thr.db['VH']:.1f} ({thr.how['VH']}) | "
              f"{water[SEA].mean():.2f} | {water[LAND].mean():.3f} | {np.nanmedian(s['VV']):.1f} / "
              f"{np.nanmedian(s['VH']):.1f} | {np.nanmedian(land['VV']):.1f} / {np.nanmedian(land['VH']):.1f} |")
    print("\n### Log-ratio change, land bursts (IW2), pairs of consecutive dates\n")
    print("| pair | robust sigma of LR (dB), median over bursts | threshold (dB) | changed (decrease+increase) | "
          "water appeared / disappeared |\n|---|---|---|---|---|")
    for a, b in zip(dates, dates[1:], strict=False):
        sig, thr_, changed, wa, wd = [], [], [], [], []
        for burst in per[a][0]:
            if not burst.endswith("IW2") or burst not in per[b][0]:
                continue
            c = change_map(per[a][0][burst], per[b][0][burst], per[a][1][burst], per[b][1][burst])
            lr = c.log_ratio_db[np.isfinite(c.log_ratio_db)]
            sig.append(1.4826 * float(np.median(np.abs(lr - np.median(lr)))))
            thr_.append(c.threshold_db)
            changed.append(c.fraction("decrease") + c.fraction("increase"))
            wa.append(c.fraction("water_appeared"))
            wd.append(c.fraction("water_disappeared"))
        print(f"| {a} -> {b} | {np.median(sig):.2f} | {np.median(thr_):.2f} | {np.mean(changed):.3f} | "
              f"{np.mean(wa):.3f} / {np.mean(wd):.3f} |")
    if img:
        a, b, windy = "2021-12-19", "2022-12-20", "2022-11-14"
        land = change_map(per[a][0][LAND], per[b][0][LAND], per[a][1][LAND], per[b][1][LAND])
        sea = change_map(per[a][0][SEA], per[windy][0][SEA], per[a][1][SEA], per[windy][1][SEA])

        def colour(c) -> np.ndarray:  # type: ignore[no-untyped-def]
            out = np.zeros((*c.classes.shape, 3), dtype=np.uint8)
            for value, rgb in COLOURS.items():
                out[c.classes == value] = rgb
            return out

        save([grey(per[a][0][LAND]["VH"], -30, -5), grey(per[b][0][LAND]["VH"], -30, -5), colour(land),
              grey(per[a][0][SEA]["VV"]), grey(per[windy][0][SEA]["VV"]), colour(sea)],
             img / "s1-opera-change.png", 2)
        print(f"\nchange classes: {', '.join(f'{i}={n}' for i, n in enumerate(CHANGE_CLASSES))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--img", type=Path, help="write the PNG pictures into this folder")
    args = parser.parse_args()
    model = WaterModel(REGISTRY, ["CPUExecutionProvider"])
    camargue(model, args.img)
    opera(model, args.img)


if __name__ == "__main__":
    main()
