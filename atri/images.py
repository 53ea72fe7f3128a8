"""Images for a user message: pasted http(s) URLs and uploaded files as base64 data: URLs."""
from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass, field
from urllib.parse import urlparse

from PIL import Image, UnidentifiedImageError

# DashScope caps a base64 item at 10,485,760 bytes; base64 grows data by 4/3.
MAX_UPLOAD_BYTES = 7 * 1024 * 1024
MIN_SIDE_PX = 10
MAX_ASPECT_RATIO = 200


@dataclass
class ImageBatch:
    urls: list[str] = field(default_factory=list)
    problems: list[tuple[str, dict[str, object]]] = field(default_factory=list)  # (i18n key, values)


def parse_image_urls(text: str) -> ImageBatch:
    batch = ImageBatch()
    for line in text.replace(",", "\n").split():
        url = line.strip()
        if not url:
            continue
        parsed = urlparse(url)
        if parsed.scheme in ("http", "https") and parsed.netloc:
            batch.urls.append(url)
        else:
            batch.problems.append(("image_url_refused", {"url": url[:80]}))
    return batch


def file_to_data_url(name: str, data: bytes, batch: ImageBatch) -> None:
    """Append the file as a data: URL, or a problem saying why it was not sent."""
    if len(data) > MAX_UPLOAD_BYTES:
        batch.problems.append(("image_too_big", {"name": name, "limit": MAX_UPLOAD_BYTES // (1024 * 1024)}))
        return
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            mime = Image.MIME.get(image.format or "", "")
    except (UnidentifiedImageError, OSError):
        batch.problems.append(("image_not_image", {"name": name}))
        return
    if not mime or min(width, height) < MIN_SIDE_PX or max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        batch.problems.append(("image_not_image", {"name": name}))
        return
    batch.urls.append(f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}")


def decode_data_url(url: str) -> bytes | None:
    """The bytes of a base64 data: URL, None for anything else."""
    if not url.startswith("data:") or ";base64," not in url:
        return None
    try:
        return base64.b64decode(url.split(";base64,", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        return None


def shorten_data_urls(value: object) -> object:
    """A copy of a request/response for display, with base64 images abbreviated."""
    if isinstance(value, str) and value.startswith("data:") and len(value) > 120:
        return f"{value[:40]}… ({len(value) * 3 // 4 // 1024} KB)"
    if isinstance(value, dict):
        return {k: shorten_data_urls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shorten_data_urls(v) for v in value]
    return value
