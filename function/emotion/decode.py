"""Image bytes -> one upright 8-bit Pillow image, refusing bombs before decoding pixels."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from emotion.errors import bad_request, too_large, unsupported

# Formats a face crop plausibly arrives in; anything else Pillow could open is refused.
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


def decode_image(data: bytes, max_pixels: int, min_side: int) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError:  # Pillow refuses absurd headers at open
        raise too_large("image_too_large", "The image header claims too many pixels.") from None
    except UnidentifiedImageError:
        if _is_other_image(data):
            raise unsupported(
                "unsupported_image_format",
                f"That image format is not accepted; send one of {', '.join(FORMATS)}.",
            ) from None
        raise bad_request("not_an_image", "The data is not an image.") from None
    except Exception:  # Pillow plugins raise assorted errors on garbage headers
        raise bad_request("not_an_image", "The image header could not be read.") from None

    width, height = image.size
    if width * height > max_pixels:
        raise too_large(
            "image_too_large",
            f"The image is {width}x{height} pixels; the limit is {max_pixels:,} pixels.",
        )
    if min(width, height) < min_side:
        raise bad_request(
            "image_too_small",
            f"The image is {width}x{height} pixels; each side must be at least {min_side}.",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.seek(0)  # multi-frame (GIF, TIFF, APNG): the first frame
            image.load()
        image = ImageOps.exif_transpose(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise too_large("image_too_large", "The image decompresses to too many pixels.") from None
    except Exception:  # truncated or corrupt data: OSError, SyntaxError, ValueError...
        raise bad_request("truncated_image", "The image data is truncated or corrupt.") from None
    return to_8bit(image)


def to_8bit(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> L or RGB, so colour conversion downstream is plain."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # Pillow's own I -> L conversion clips at 255; scale 16-bit range instead.
        pixels = np.asarray(image, dtype=np.float32)
        top = 65535.0 if image.mode.startswith("I;16") or pixels.max() > 255 else 255.0
        return Image.fromarray(np.clip(pixels * (255.0 / top), 0, 255).astype(np.uint8), "L")
    if image.mode == "F":
        pixels = np.asarray(image, dtype=np.float32)
        scale = 255.0 if pixels.max() <= 1.0 else 1.0
        return Image.fromarray(np.clip(pixels * scale, 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # Transparent pixels count as white, not as whatever colour hides under them.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("L", "RGB"):
        return image
    return image.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV, 1


def _is_other_image(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)):
            return True
    except Exception:
        return False
