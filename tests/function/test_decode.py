"""Image bytes -> upright 8-bit image, as the model should see it."""

from __future__ import annotations

import numpy as np
from PIL import Image

from emotion.decode import decode_image
from face_images import astronaut_face, encode


def decode(raw: bytes) -> Image.Image:
    return decode_image(raw, max_pixels=16_000_000, min_side=8)


def test_exif_orientation_is_applied():
    face = astronaut_face().convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated; "rotate 90° clockwise to display"
    stored = face.transpose(Image.Transpose.ROTATE_90)
    upright = decode(encode(stored, "PNG", exif=exif.tobytes()))
    assert np.array_equal(np.asarray(upright), np.asarray(face))


def test_transparent_pixels_become_white_not_black():
    clear = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    assert decode(encode(clear)).getpixel((5, 5)) == (255, 255, 255)


def test_sixteen_bit_is_scaled_not_clipped():
    ramp = np.tile(np.arange(0, 65536, 256, dtype=np.uint16), (16, 1))
    decoded = np.asarray(decode(encode(Image.fromarray(ramp))))
    assert decoded.min() == 0 and 250 <= decoded.max() <= 255
    assert np.all(np.diff(decoded[0].astype(int)) >= 0)


def test_first_frame_of_an_animation():
    first = Image.new("L", (16, 16), 10)
    second = Image.new("L", (16, 16), 240)
    raw = encode(first, "GIF", save_all=True, append_images=[second])
    assert np.asarray(decode(raw).convert("L")).mean() < 20


def test_cmyk_becomes_rgb():
    assert decode(encode(astronaut_face().convert("CMYK"), "JPEG")).mode == "RGB"
