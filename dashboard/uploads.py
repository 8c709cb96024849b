"""Checking an uploaded file before it reaches the model: size, format, integrity and pixel dimensions."""
from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # matches server.maxUploadSize in .streamlit/config.toml
# far above any dermatoscope (HAM10000 originals are 0.27 MP) yet small enough to decode safely
MAX_PIXELS = 40_000_000
# below this on the shorter side a lesion is a few pixels across: nothing to compare (HAM10000 images are 600x450,
# its resized copies 200x150), so such an upload is refused rather than stretched and searched
MIN_SIDE = 24
ALLOWED_FORMATS = {"JPEG": "JPEG", "PNG": "PNG"}
UPLOAD_TYPES = ["jpg", "jpeg", "png"]


class UploadError(ValueError):
    """An upload that cannot be used; the message says why in words a user understands."""


def read_upload(data: bytes, name: str = "upload") -> Image.Image:
    """Decode an uploaded JPEG or PNG into an RGB image, or raise UploadError saying what is wrong."""
    if not data:
        raise UploadError(f"{name} is empty.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(f"{name} is {len(data) / 2**20:.1f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB.")
    with warnings.catch_warnings():
        # PIL only warns between MAX_IMAGE_PIXELS and twice that; any bomb must be refused, not decoded
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise UploadError(f"{name} declares far too many pixels (a decompression bomb?); images up to "
                              f"{MAX_PIXELS / 1e6:.0f} megapixels are accepted.") from None
        except UnidentifiedImageError:
            raise UploadError(f"{name} is not a JPEG or PNG image (its contents are not a known image format).") \
                from None
        except Exception as exc:  # PIL raises many types for malformed headers
            raise UploadError(f"{name} could not be read as an image ({exc}).") from None
        if img.format not in ALLOWED_FORMATS:
            raise UploadError(f"{name} is a {img.format} file; upload a JPEG or PNG image.")
        width, height = img.size
        if width * height > MAX_PIXELS:
            raise UploadError(f"{name} is {width}x{height} pixels; images up to {MAX_PIXELS / 1e6:.0f} megapixels "
                              "are accepted (a dermatoscopic image is far smaller).")
        if min(width, height) < MIN_SIDE:
            raise UploadError(f"{name} is {width}x{height} pixels, too small to show a lesion; images need at least "
                              f"{MIN_SIDE} pixels on the shorter side (HAM10000 images are 600x450).")
        try:
            img.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise UploadError(f"{name} is damaged or truncated and cannot be decoded ({exc}).") from None
        except Image.DecompressionBombWarning:
            raise UploadError(f"{name} expands to too many pixels to decode safely.") from None
    try:
        return ImageOps.exif_transpose(img).convert("RGB")
    except Exception as exc:  # exotic modes (e.g. 16-bit palettes) that PIL cannot turn into RGB
        raise UploadError(f"{name} uses an image mode that cannot be converted to RGB ({exc}).") from None

