"""Reading RGB chips from disk with errors that say exactly what is wrong."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from amberwatch.errors import InputError
from amberwatch.vhr.features import MIN_SIDE

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
RGB_MODES = {"RGB", "RGBA", "P", "PA", "RGBX", "CMYK", "YCbCr"}


def read_rgb(path: Path) -> np.ndarray:
    """An 8-bit colour image file -> uint8 array (H, W, 3). Raises InputError for unreadable/non-RGB files."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                mode = im.mode
                if mode not in RGB_MODES:
                    raise InputError(
                        f"{path}: image mode {mode!r} is not an 8-bit colour image; expected an RGB chip "
                        "(grayscale, 16-bit and multiband images are not supported)"
                    )
                arr = np.asarray(im.convert("RGB"))
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as err:
        raise InputError(f"{path}: not a readable image ({type(err).__name__}: {err})") from err
    if min(arr.shape[:2]) < MIN_SIDE:
        raise InputError(f"{path}: image is {arr.shape[1]}x{arr.shape[0]} px; need at least {MIN_SIDE} px a side")
    return arr
