"""Image bytes for display: thumbnails of dataset images, a placeholder tile for missing ones, heat-map overlays."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

THUMB_SIDE = 256
PLACEHOLDER_SIZE = (200, 150)  # HAM10000's 4:3, so grids keep their shape whether images exist or not


def thumbnail(path: Path, side: int = THUMB_SIDE) -> bytes:
    """JPEG bytes of the image at `path`, at most `side` pixels wide or high."""
    raw = Path(path).read_bytes()
    with Image.open(io.BytesIO(raw)) as img:
        if img.format == "JPEG" and max(img.size) <= side:
            return raw  # already small: re-encoding would only lose quality and time
        img = ImageOps.exif_transpose(img).convert("RGB")
        img.thumbnail((side, side), Image.BILINEAR)
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=85)
        return out.getvalue()


def placeholder(label: str = "image not available", size: tuple[int, int] = PLACEHOLDER_SIZE) -> bytes:
    """PNG bytes of a neutral tile saying the image is missing."""
    img = Image.new("RGB", size, (236, 233, 230))
    draw = ImageDraw.Draw(img)
    w, h = size
    draw.rectangle((0, 0, w - 1, h - 1), outline=(200, 195, 190), width=2)
    # a simple lesion-like outline so the tile reads as "a picture goes here"
    draw.ellipse((w // 2 - 22, h // 2 - 34, w // 2 + 22, h // 2 + 10), outline=(190, 184, 178), width=3)
    font = ImageFont.load_default(size=14)
    draw.text((w / 2, h // 2 + 28), label, fill=(120, 115, 110), font=font, anchor="mm")
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def heat_overlay(picture: Image.Image, heat: np.ndarray, alpha: float = 0.45) -> bytes:
    """PNG bytes of `picture` with `heat` ((h, w) in [0, 1], the picture's size) laid over it in the jet colours."""
    from matplotlib import colormaps

    base = np.asarray(picture.convert("RGB"), dtype=np.float32)
    colour = colormaps["jet"](np.clip(heat, 0.0, 1.0))[..., :3] * 255.0
    mixed = (1.0 - alpha) * base + alpha * colour
    out = io.BytesIO()
    Image.fromarray(mixed.round().astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()
