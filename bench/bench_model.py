"""Throughput of a segmentation model in ONNX Runtime on a full Sentinel-2 tile (10980 x 10980 px).

The input is generated lazily window by window (tiled from the real eo-box crop, or random reflectance), so the
benchmark measures the model, not disk I/O.  Windows overlap by ``--overlap`` px on each side (cropped away, as
in the runtime); throughput counts output pixels only.

    .venv/bin/python bench/bench_model.py [--model models/registry/s2-unet/1.2.0] --threads 2
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "models"))


def source_tiles(kind: str, bands: int) -> np.ndarray:
    """A [C, H, W] reflectance pattern the windows are cut from (mirror-tiled over the tile)."""
    if kind == "real":
        try:
            from amberwatch_training.scenes import load_sentinel2

            stack = load_sentinel2().model_stack()
            if stack.shape[0] == bands:
                return stack
        except FileNotFoundError:
            pass
        print("real crop not available or band count differs; using random input", file=sys.stderr)
    return np.random.default_rng(0).uniform(0.0, 0.5, (bands, 1024, 1024)).astype(np.float32)


def window_input(src: np.ndarray, r0: int, c0: int, h: int, w: int) -> np.ndarray:
    """Window [1, C, h, w] of the infinite mirror-tiling of ``src`` (lazy: built per window)."""
    _, sh, sw = src.shape
    rows = np.arange(r0, r0 + h) % (2 * sh)
    rows = np.where(rows < sh, rows, 2 * sh - 1 - rows)
    cols = np.arange(c0, c0 + w) % (2 * sw)
    cols = np.where(cols < sw, cols, 2 * sw - 1 - cols)
    return src[:, rows][:, :, cols][None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="registry folder (default: the newest s2-unet)")
    ap.add_argument("--size", type=int, default=10980, help="tile edge in pixels")
    ap.add_argument("--window", type=int, default=1024)
    ap.add_argument("--overlap", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--input", choices=["real", "random"], default="real")
    ap.add_argument("--limit", type=int, default=0, help="stop after N windows (0 = whole tile)")
    a = ap.parse_args()
    if a.model is None:
        from amberwatch.detect.registry import get_model

        a.model = get_model(ROOT / "models" / "registry", "s2-unet", "sentinel2", {}).path
        print(f"model: {a.model}")

    card = json.loads((a.model / "mlm.json").read_text())
    props = card["properties"]
    multiple = int(props.get("amberwatch:input_multiple", 1))
    bands = len(props["mlm:input"][0]["bands"])
    res = float(props.get("amberwatch:resolution", props.get("gsd", 10.0)))
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    sess = ort.InferenceSession(str(a.model / "model.onnx"), so, providers=providers)
    print(f"model {a.model} bands={bands} multiple={multiple} provider={sess.get_providers()[0]} threads={a.threads}")
    src = source_tiles(a.input, bands)
    classes = np.zeros((a.size, a.size), np.uint8)  # what a runtime keeps: the class map of the tile
    step = a.window - 2 * a.overlap
    pixels, windows, t_model = 0, 0, 0.0
    t0 = time.perf_counter()
    for r in range(0, a.size, step):
        for c in range(0, a.size, step):
            h, w = min(step, a.size - r), min(step, a.size - c)
            r0, c0 = max(0, r - a.overlap), max(0, c - a.overlap)
            r1, c1 = min(a.size, r + h + a.overlap), min(a.size, c + w + a.overlap)
            ih = -(-(r1 - r0) // multiple) * multiple
            iw = -(-(c1 - c0) // multiple) * multiple
            x = window_input(src, r0, c0, ih, iw)
            t1 = time.perf_counter()
            prob = sess.run(["probabilities"], {"reflectance": x})[0][0]
            t_model += time.perf_counter() - t1
            classes[r : r + h, c : c + w] = prob[:, r - r0 : r - r0 + h, c - c0 : c - c0 + w].argmax(0)
            pixels += h * w
            windows += 1
            if a.limit and windows >= a.limit:
                break
        if a.limit and windows >= a.limit:
            break
    wall = time.perf_counter() - t0
    km2 = pixels * res * res / 1e6
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"windows={windows} window={a.window} overlap={a.overlap} pixels={pixels:,}")
    print(f"wall {wall:.1f} s  (model {t_model:.1f} s)")
    print(
        f"throughput {pixels / wall:,.0f} px/s = {km2 / wall * 3600:,.0f} km2/h (wall); "
        f"{pixels / t_model:,.0f} px/s model only"
    )
    print(f"peak RSS {rss_mb:,.0f} MB")


if __name__ == "__main__":
    main()
