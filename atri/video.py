"""Video from a visitor, for a model that reads video (issue 33): refused by what its container declares
(size, duration, frame size) before any frame is decoded, then a few frames sampled evenly as JPEG data URLs
within the image limits — Qwen-VL takes a video as such a list of frames. Decoding runs in a worker process
with limits (atri/isolation.py): a file that lies about itself costs that worker, not the server.

PyAV reads the container and decodes (its wheels bundle FFmpeg: mp4/mov with H.264, webm with VP8/VP9, AV1).
"""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import PurePath

from PIL import Image

from .isolation import Limits, Refusal, WorkTooHeavy, run_isolated

VIDEO_TYPES = ("mp4", "webm", "mov", "m4v")
MAX_VIDEO_BYTES = 50 * 1024 * 1024  # Streamlit's upload limit
MAX_DURATION_S = 120.0  # a longer clip says little more in 8 frames, and its decoding costs more
MAX_FRAME_PIXELS = 8_294_400  # 4K (3840 × 2160): larger frames are a decoding bomb, not a phone's clip
FRAMES = 8  # sampled evenly over the clip
FRAME_EDGE = 768  # the longer side of a sampled frame, in pixels
VIDEO_LIMITS = Limits(cpu_s=30, wall_s=60, memory_bytes=1536 * 1024 * 1024)


class VideoProblem(Refusal):
    """A video refused, with the i18n key of the reason and its values."""


@dataclass(frozen=True)
class VideoInfo:
    duration_s: float
    width: int
    height: int
    codec: str


def video_kind(name: str) -> str | None:
    kind = PurePath(name).suffix.lower().lstrip(".")
    return kind if kind in VIDEO_TYPES else None


def _declared(container, name: str) -> tuple[VideoInfo, object]:  # (an av container)
    if not container.streams.video:
        raise VideoProblem("video_no_picture", name=name)
    stream = container.streams.video[0]
    if container.duration:
        duration = container.duration / 1_000_000  # av.time_base
    elif stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    else:
        raise VideoProblem("video_unreadable", name=name)
    info = VideoInfo(duration, stream.codec_context.width, stream.codec_context.height, stream.codec_context.name)
    if info.duration_s > MAX_DURATION_S:
        raise VideoProblem("video_too_long", name=name, seconds=round(info.duration_s), limit=round(MAX_DURATION_S))
    if info.width * info.height > MAX_FRAME_PIXELS or min(info.width, info.height) <= 0:
        raise VideoProblem("video_too_large", name=name, width=info.width, height=info.height)
    return info, stream


def _data_url(image: Image.Image) -> str:
    image = image.convert("RGB")
    image.thumbnail((FRAME_EDGE, FRAME_EDGE))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()


def sample_frames(name: str, data: bytes, count: int = FRAMES) -> tuple[VideoInfo, list[str]]:
    """The clip's declared facts and `count` frames spread evenly over it (run it in a worker:
    `frames_isolated`). Raises VideoProblem."""
    import av  # loaded in the worker only

    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.error.FFmpegError, ValueError):
        raise VideoProblem("video_unreadable", name=name) from None
    with container:
        info, stream = _declared(container, name)
        frames: list[str] = []
        try:
            for index in range(count):
                moment = info.duration_s * (index + 0.5) / count
                container.seek(int(moment / stream.time_base), stream=stream, backward=True)
                frame = next((f for f in container.decode(stream) if f.time is None or f.time >= moment - 1e-3), None)
                if frame is not None:
                    frames.append(_data_url(frame.to_image()))
        except av.error.FFmpegError:
            pass  # what was decoded before the damage is kept
    if not frames:
        raise VideoProblem("video_unreadable", name=name)
    return info, frames


def frames_isolated(name: str, data: bytes, count: int = FRAMES) -> tuple[VideoInfo, list[str]]:
    """`sample_frames` in a worker process with limits; refused at once when the file itself is too big."""
    if len(data) > MAX_VIDEO_BYTES:
        raise VideoProblem("video_too_big", name=name, size_mb=len(data) / 2**20, limit_mb=MAX_VIDEO_BYTES / 2**20)
    try:
        return run_isolated(sample_frames, name, data, count, limits=VIDEO_LIMITS)
    except WorkTooHeavy:
        raise VideoProblem("video_too_heavy", name=name) from None
