"""Images for a user message: pasted http(s) URLs and uploaded files as base64 data: URLs.

An image reference is only ever an http(s) URL or a `data:image/…;base64,` URL: never a path (a
display call given a plain string would read that file on the server). Uploaded images are decoded
once, within a pixel limit, and get a small thumbnail that is what the page shows.
"""
from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from dataclasses import dataclass, field
from urllib.parse import urlparse

from PIL import Image, UnidentifiedImageError

# DashScope caps a base64 item at 10,485,760 bytes; base64 grows data by 4/3.
MAX_UPLOAD_BYTES = 7 * 1024 * 1024
MAX_DATA_URL_CHARS = (MAX_UPLOAD_BYTES * 4) // 3 + 64
MAX_PIXELS = 40_000_000  # 40 megapixels (e.g. 8000 × 5000): more is a decompression bomb, not a photo
MAX_URL_CHARS = 4096
MIN_SIDE_PX = 10
MAX_ASPECT_RATIO = 200
THUMBNAIL_PX = 320
_DATA_URL = re.compile(r"data:image/(png|jpeg|webp|gif|bmp);base64,", re.ASCII)

# Pillow checks the pixel count when it reads the header (before decoding anything): it warns above
# this and raises above twice this. We refuse above it ourselves, with the size, so the warning is noise.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class BadImage(ValueError):
    """An image reference or file that is refused: `key` is the i18n key, `values` fill it."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(f"{key}: {values}")
        self.key, self.values = key, values


@dataclass
class ImageBatch:
    urls: list[str] = field(default_factory=list)
    thumbnails: list[str] = field(default_factory=list)  # a data: URL per entry of `urls`, "" for http(s)
    problems: list[tuple[str, dict[str, object]]] = field(default_factory=list)  # (i18n key, values)


def is_web_url(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc) and len(url) <= MAX_URL_CHARS


def parse_image_urls(text: str) -> ImageBatch:
    batch = ImageBatch()
    for line in text.replace(",", "\n").split():
        url = line.strip()
        if not url:
            continue
        if is_web_url(url):
            batch.urls.append(url)
            batch.thumbnails.append("")
        else:
            batch.problems.append(("image_url_refused", {"url": url[:80]}))
    return batch


def _open_checked(name: str, data: bytes) -> Image.Image:
    """The decoded image header, or BadImage with the reason (size, pixels, not an image)."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise BadImage("image_too_big", name=name, limit=MAX_UPLOAD_BYTES // (1024 * 1024))
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
    except Image.DecompressionBombError as error:
        pixels = re.search(r"\((\d+) pixels\)", str(error))
        megapixels = f"{int(pixels.group(1)) / 1e6:.0f}" if pixels else f"> {2 * MAX_PIXELS // 1_000_000}"
        raise BadImage("image_too_many_pixels", name=name, megapixels=megapixels,
                       limit=MAX_PIXELS // 1_000_000) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise BadImage("image_not_image", name=name) from None
    if width * height > MAX_PIXELS:
        raise BadImage("image_too_many_pixels", name=name, megapixels=f"{width * height / 1e6:.0f}",
                       limit=MAX_PIXELS // 1_000_000)
    if not Image.MIME.get(image.format or "") or min(width, height) < MIN_SIDE_PX \
            or max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise BadImage("image_not_image", name=name)
    return image


def make_thumbnail(image: Image.Image) -> str:
    """A small WebP data: URL of the image: what the page shows, so the original is decoded only once."""
    try:
        image.seek(0)
        preview = image.convert("RGBA") if image.mode in ("RGBA", "LA", "P") else image.convert("RGB")
        preview.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        buffer = io.BytesIO()
        preview.save(buffer, format="WEBP", quality=70)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise BadImage("image_not_image", name="") from None
    return "data:image/webp;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def image_from_bytes(name: str, data: bytes) -> tuple[str, str]:
    """An uploaded file as (data: URL to send, thumbnail to show); raises BadImage."""
    image = _open_checked(name, data)
    mime = Image.MIME[image.format or ""]
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}", make_thumbnail(image)


def file_to_data_url(name: str, data: bytes, batch: ImageBatch) -> None:
    """Append the file as a data: URL, or a problem saying why it was not sent."""
    try:
        url, thumbnail = image_from_bytes(name, data)
    except BadImage as refused:
        batch.problems.append((refused.key, refused.values))
        return
    batch.urls.append(url)
    batch.thumbnails.append(thumbnail)


def check_image_reference(url: str, decode: bool = True) -> str:
    """An image reference from outside (an import, a stored row): an http(s) URL, or a data:image URL
    that decodes to an image within the limits (`decode=False`: of that shape). Raises BadImage; never
    treats the text as a path."""
    if is_web_url(url):
        return url
    if len(url) > MAX_DATA_URL_CHARS:
        raise BadImage("image_too_big", name="data:", limit=MAX_UPLOAD_BYTES // (1024 * 1024))
    if not _DATA_URL.match(url[:40]):
        raise BadImage("image_url_refused", url=url[:80])
    if not decode:
        return url
    data = decode_data_url(url)
    if data is None:
        raise BadImage("image_not_image", name="data:")
    _open_checked("data:", data)
    return url


def decode_data_url(url: str) -> bytes | None:
    """The bytes of a base64 data: URL, None for anything else."""
    if not url.startswith("data:") or ";base64," not in url:
        return None
    try:
        return base64.b64decode(url.split(";base64,", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        return None


def thumbnail_of(url: str) -> str:
    """A thumbnail for a data: URL stored without one (older rows and imports); "" for http(s)."""
    if is_web_url(url):
        return ""
    data = decode_data_url(url)
    return make_thumbnail(_open_checked("data:", data)) if data else ""


def shorten_data_urls(value: object) -> object:
    """A copy of a request/response for display, with base64 images abbreviated."""
    if isinstance(value, str) and value.startswith("data:") and len(value) > 120:
        return f"{value[:40]}… ({len(value) * 3 // 4 // 1024} KB)"
    if isinstance(value, dict):
        return {k: shorten_data_urls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shorten_data_urls(v) for v in value]
    return value
