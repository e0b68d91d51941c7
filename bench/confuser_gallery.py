"""Picture of the Sentinel-2 confuser set: one test window per kind (columns) and season (rows: late summer, winter).

False colour (SWIR-1.6, NIR, red); the confuser's footprint outlined in yellow, the control mining site in cyan,
objects of the model (its card rule) in magenta. Run from the repository root:

    .venv/bin/python bench/confuser_gallery.py models/registry/s2-unet/1.2.0 --png docs/img/s2_confusers.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from amberwatch.detect.decision import DecisionRule, object_class_map
from amberwatch.detect.session import ModelRunner, create_session
from amberwatch_training import confusers
from amberwatch_training.confuser_eval import combine
from amberwatch_training.export import predict
from amberwatch_training.scenes import load_sentinel2


def edge(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--png", type=Path, default=Path("docs/img/s2_confusers.png"))
    ap.add_argument("--index", type=int, default=0, help="which test window of each kind (0..per-kind-1)")
    a = ap.parse_args()
    rule = DecisionRule.from_card(json.loads((a.model_dir / "mlm.json").read_text())["properties"])
    session, provider = create_session(a.model_dir / "model.onnx", ["CPUExecutionProvider"], threads=1)
    runner = ModelRunner(session, provider)
    scene = load_sentinel2()
    summer = confusers.late_summer_scene(scene)
    lc = confusers.LandCover.of(scene)
    size, label_h = confusers.CHIP, 14
    canvas = Image.new("RGB", (size * len(confusers.KINDS), 2 * (size + label_h)), "white")
    draw = ImageDraw.Draw(canvas)
    for row, season in enumerate(confusers.SEASONS):
        sc = summer if season == "late_summer" else scene
        for col, kind in enumerate(confusers.KINDS):
            ch = confusers.make_chip(sc, lc, kind, season, "test", confusers.seed_of(kind, season, "test", a.index))
            st = ch.rendered.stack
            rgb = np.clip(np.stack([st[8], st[6], st[2]], -1) / 0.4 * 255, 0, 255).astype(np.uint8)
            cls = object_class_map(combine(predict(runner.session, st, 8), None, "unet"), rule)
            rgb[edge(ch.confuser)] = (255, 230, 0)
            rgb[edge(ch.rendered.site_ids > 0)] = (0, 230, 255)
            rgb[edge(cls > 0)] = (255, 0, 255)
            y = row * (size + label_h)
            canvas.paste(Image.fromarray(rgb), (col * size, y + label_h))
            draw.text((col * size + 3, y + 1), f"{kind} / {season}", fill="black")
    a.png.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(a.png)
    print(a.png)


if __name__ == "__main__":
    main()
