"""Picture sheets of the VHR classifier's errors on the held-out tiles (false alarms and misses).

    python -m amberwatch_training.vhr.failures --data /work/shared/data/vhr/texty-chips \
        --model models/registry/vhr-texty/1.1.0 --out /tmp/vhr-failures

The chips are internal data (imagery © Microsoft/DigitalGlobe, no licence): the sheets are written only outside
this repository, for the operator's own inspection, and must not be committed or published.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from amberwatch.errors import InputError
from amberwatch.vhr.io import read_rgb
from amberwatch.vhr.model import load_vhr_model
from amberwatch_training.vhr.dataset import load_chipset, test_mask, tile_groups

REPO = Path(__file__).resolve().parents[3]
THUMB = 160


def _sheet(paths: list[Path], probs: np.ndarray, title: str, out: Path, per_row: int = 6) -> Path:
    rows = max(1, -(-len(paths) // per_row))
    sheet = Image.new("RGB", (per_row * THUMB, rows * (THUMB + 14) + 18), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 3), title, "black")
    for k, (path, p) in enumerate(zip(paths, probs, strict=True)):
        x, y = (k % per_row) * THUMB, 18 + (k // per_row) * (THUMB + 14)
        sheet.paste(Image.open(path).convert("RGB").resize((THUMB, THUMB)), (x, y))
        draw.text((x + 3, y + THUMB + 1), f"p={p:.2f} {path.stem[:18]}", "black")
    sheet.save(out)
    return out


def failure_sheets(data_dir: Path, model_dir: Path, out_dir: Path, n: int = 12) -> dict[str, Path]:
    """Score the held-out chips through the model's ONNX session and save the ``n`` most confident false alarms
    and misses as two PNG sheets in ``out_dir`` (refused inside the repository: the chips are internal data)."""
    out_dir = Path(out_dir).resolve()
    if out_dir == REPO or REPO in out_dir.parents:
        raise InputError(f"{out_dir} is inside the repository; the chips are internal data: choose a folder outside")
    chips = load_chipset(Path(data_dir))
    test = np.flatnonzero(test_mask(chips, tile_groups(chips.tiles)))
    model = load_vhr_model(Path(model_dir))
    probs = model.score_many([read_rgb(chips.paths[i]) for i in test])
    y = chips.labels[test]
    positive = probs >= model.threshold
    false_alarms = np.flatnonzero(positive & (y == 0))
    misses = np.flatnonzero(~positive & (y == 1))
    false_alarms = false_alarms[np.argsort(-probs[false_alarms])][:n]
    misses = misses[np.argsort(probs[misses])][:n]
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = f"{model.name} {model.version}, threshold {model.threshold:.3f}, held-out tiles"
    return {
        "false_alarms": _sheet([chips.paths[test[i]] for i in false_alarms], probs[false_alarms],
                               f"false alarms ({len(false_alarms)} shown) - {tag}", out_dir / "vhr_false_alarms.png"),
        "misses": _sheet([chips.paths[test[i]] for i in misses], probs[misses],
                         f"misses ({len(misses)} shown) - {tag}", out_dir / "vhr_misses.png"),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="a folder OUTSIDE the repository")
    ap.add_argument("-n", type=int, default=12)
    a = ap.parse_args(argv)
    for kind, path in failure_sheets(a.data, a.model, a.out, a.n).items():
        print(kind, path)


if __name__ == "__main__":
    main()
