"""The images a tool returned (an MCP tool's): checked with the limits of an upload, a few per step, kept as a
thumbnail for the step the visitor sees and as a data URL for a model that can see.

Chat Completions has no place for an image in a `role: "tool"` message, so a vision model gets them on the
next round in one `role: "user"` message after the round's tool results: a text part naming the tool that
returned them, then the image parts (what OpenAI and DashScope accept). An image the server meant for the
user alone is shown, never sent.
"""
from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .images import BadImage, image_from_bytes
from .mcp_results import McpImage

MAX_STEP_IMAGES = 4  # kept from one call; more are named in its text and dropped
MAX_ROUND_IMAGES = 8  # sent to the model after one round's calls (each image may be up to 7 MB)
MAX_THUMBNAIL_CHARS = 200_000  # a stored thumbnail (320 px WebP: tens of KB)
_PNG = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class StepImage:
    """An image a call returned: `url` (the checked original as a data URL) goes to a vision model and is not
    stored; `thumbnail` is what the step shows and keeps."""

    url: str = field(repr=False)
    thumbnail: str = field(repr=False)
    for_model: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"thumbnail": self.thumbnail, **({} if self.for_model else {"for_model": False})}


@dataclass(frozen=True)
class Pictured:
    """A tool's output with the images it returned (the Toolbox checks them)."""

    text: str
    images: tuple[McpImage, ...] = ()


def without_broken_chunks(data: bytes) -> bytes:
    """A PNG without the ancillary chunks whose checksum is wrong, as libpng (and so a browser) reads it;
    anything else as it is. server-everything's tiny image has a broken iCCP chunk, which Pillow refuses."""
    if not data.startswith(_PNG):
        return data
    kept, at = [_PNG], len(_PNG)
    while at + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        end = at + 12 + length
        if end > len(data):
            return data
        chunk = data[at:end]
        intact = zlib.crc32(chunk[4:-4]) == struct.unpack(">I", chunk[-4:])[0]
        if intact or not kind[:1].islower():  # a critical chunk is never dropped: Pillow then says why
            kept.append(chunk)
        at = end
    return b"".join(kept) + data[at:]


def checked_images(images: Sequence[McpImage]) -> tuple[list[StepImage], list[str]]:
    """The images within the limits of an upload (at most MAX_STEP_IMAGES), and for each one left out a line
    saying why (which the model reads with the result, and the visitor sees)."""
    kept: list[StepImage] = []
    notes: list[str] = []
    for number, image in enumerate(images, start=1):
        if len(kept) == MAX_STEP_IMAGES:
            notes.append(f"[image {number}: not kept, at most {MAX_STEP_IMAGES} images are kept from one call]")
            continue
        try:
            url, thumbnail = image_from_bytes(f"image {number}", without_broken_chunks(image.data))
        except BadImage as refused:
            notes.append(f"[image {number}: not kept, {_why(refused)}]")
            continue
        if len(thumbnail) > MAX_THUMBNAIL_CHARS:
            notes.append(f"[image {number}: not kept, its thumbnail is too big]")
            continue
        kept.append(StepImage(url, thumbnail, image.for_model))
    return kept, notes


def _why(refused: BadImage) -> str:
    values = refused.values
    return {"image_too_big": f"larger than {values.get('limit')} MB",
            "image_too_many_pixels": f"{values.get('megapixels')} megapixels, more than {values.get('limit')}",
            }.get(refused.key, "not an image that can be read (or under 10 px, or too narrow)")


@dataclass(frozen=True)
class ReturnedImages:
    """The images of one call that a model may see, and which tool returned them."""

    tool: str
    call_id: str
    urls: tuple[str, ...]


def images_message(returned: Iterable[ReturnedImages]) -> dict[str, Any] | None:
    """One `role: "user"` message carrying the round's images (at most MAX_ROUND_IMAGES), each call's after a
    text naming its tool; None when there is none to send."""
    parts: list[dict[str, Any]] = []
    room = MAX_ROUND_IMAGES
    for call in returned:
        urls = call.urls[:room]
        if not urls:
            continue
        room -= len(urls)
        parts.append({"type": "text", "text": f"The tool {call.tool} (call {call.call_id}) returned "
                                              f"{'this image' if len(urls) == 1 else f'these {len(urls)} images'}:"})
        parts += [{"type": "image_url", "image_url": {"url": url}} for url in urls]
    return {"role": "user", "content": parts} if parts else None
