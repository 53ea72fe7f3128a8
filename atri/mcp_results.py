"""What an MCP tool returns, in full: text for the model, images as data for the visitor and vision models,
embedded resources as their text, resource links as links with their names; the `audience` annotation honoured."""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

MAX_IMAGE_BYTES = 10 * 1024 * 1024  # an image a tool returns, decoded (DashScope's cap on one image)


@dataclass(frozen=True)
class McpImage:
    """An image a tool returned: for the visitor to see and a vision model to read (the caller applies the
    same limits as to an upload)."""

    mime_type: str
    data: bytes = field(repr=False)
    for_model: bool = True  # the server's `audience` annotation leaves the assistant out: show it only


@dataclass(frozen=True)
class McpResult:
    """A tool call's result: `text` is what the model reads (images named in it as `[image N: ...]`), `shown`
    what only the visitor is meant to see (text the server marked for the user)."""

    text: str
    images: tuple[McpImage, ...] = ()
    shown: str = ""
    error: bool = False


def result_of(result: Any) -> McpResult:
    """A tool result's content in full: text as it is, images kept as data and named in the text, an embedded
    text resource as its text, a resource link as a Markdown link with its name, anything else named. Content
    the server marked for the user alone goes to `shown`, not to the model."""
    parts: list[str] = []
    shown: list[str] = []
    images: list[McpImage] = []
    for item in getattr(result, "content", None) or []:
        audience = getattr(getattr(item, "annotations", None), "audience", None)
        for_model = audience is None or "assistant" in audience
        kind = getattr(item, "type", "content")
        if kind == "image":
            told = _image(item, images, for_model)
        elif kind == "resource":
            told = _embedded(getattr(item, "resource", None), images, for_model)
        elif kind == "resource_link":
            told = _link(item)
        elif isinstance(getattr(item, "text", None), str):
            told = item.text
        else:
            told = f"[{kind}: {getattr(item, 'mime_type', '') or 'content'} not shown]"
        (parts if for_model else shown).append(told)
    if not parts and getattr(result, "structured_content", None) is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    if not parts and shown:
        parts.append("[the result was shown to the user only]")
    return McpResult("\n".join(parts), tuple(images), "\n".join(shown), bool(getattr(result, "is_error", False)))


def result_text(result: Any) -> str:
    """What the model reads of a tool result."""
    return result_of(result).text


def _image(item: Any, images: list[McpImage], for_model: bool) -> str:
    mime = str(getattr(item, "mime_type", "") or "image")
    data = _decoded(getattr(item, "data", None) or getattr(item, "blob", None) or "")
    if data is None:
        return f"[image: {mime}, too big or not valid base64]"
    images.append(McpImage(mime, data, for_model))
    return f"[image {len(images)}: {mime}, {len(data) / 1024:.1f} KB]"


def _decoded(text: str) -> bytes | None:
    if len(text) > MAX_IMAGE_BYTES * 4 // 3 + 4:  # bounded before decoding
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _embedded(resource: Any, images: list[McpImage], for_model: bool) -> str:
    uri = str(getattr(resource, "uri", "") or "")
    mime = str(getattr(resource, "mime_type", "") or "")
    text = getattr(resource, "text", None)
    if isinstance(text, str):
        return f"Resource {uri}:\n{text}" if uri else text
    if mime.startswith("image/"):
        return f"Resource {uri}: " + _image(resource, images, for_model)
    size = len(getattr(resource, "blob", "") or "") * 3 // 4
    return f"[resource {uri}: {mime or 'binary'}, {size / 1024:.1f} KB, not shown]"


def _link(item: Any) -> str:
    name = str(getattr(item, "title", None) or getattr(item, "name", None) or getattr(item, "uri", ""))
    link = f"[{name.replace(']', ')')}]({str(getattr(item, 'uri', '')).replace(')', '%29')})"
    description = getattr(item, "description", None)
    return f"{link}: {description}" if description else link
