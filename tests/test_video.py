"""Video in (issue 33): a real clip encoded here with PyAV (H.264 in mp4, VP9 in webm) is read by its
declared facts and sampled into frames within the image limits, in a worker process; a clip too long, frames
too large, a file lying about its type and a truncated file are refused with the reason, before decoding."""
import base64
import io

import av
import numpy as np
import pytest
from PIL import Image

from atri.video import FRAME_EDGE, MAX_DURATION_S, VideoProblem, frames_isolated, sample_frames


def clip(seconds: float, width: int = 1280, height: int = 720, container: str = "mp4", codec: str = "libx264",
         fps: int = 12) -> bytes:
    """A clip whose frames go from black to white, so that a frame's brightness says when it was taken."""
    out = io.BytesIO()
    with av.open(out, mode="w", format=container) as video:
        stream = video.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        total = int(seconds * fps)
        for n in range(total):
            shade = int(255 * n / max(1, total - 1))
            picture = np.full((height, width, 3), shade, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                video.mux(packet)
        for packet in stream.encode():
            video.mux(packet)
    return out.getvalue()


def brightness(data_url: str) -> float:
    image = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))
    return float(np.asarray(image.convert("L")).mean()), image.size


def test_a_clip_is_sampled_evenly_into_small_frames_in_a_worker():
    info, frames = frames_isolated("walk.mp4", clip(4.0), count=4)
    assert (round(info.duration_s), info.width, info.height, info.codec) == (4, 1280, 720, "h264")
    measured = [brightness(frame) for frame in frames]
    assert all(size == (FRAME_EDGE, 432) for _, size in measured), "the image limits: 768 px on the long side"
    shades = [shade for shade, _ in measured]
    assert shades == sorted(shades) and shades[0] < 60 and shades[-1] > 190, "spread from start to end"


def test_a_webm_clip_is_read_too():
    info, frames = sample_frames("clip.webm", clip(2.0, 320, 240, container="webm", codec="libvpx-vp9"), count=2)
    assert info.codec == "vp9" and len(frames) == 2


def test_what_the_container_declares_is_refused_before_decoding():
    with pytest.raises(VideoProblem) as long:
        sample_frames("long.mp4", clip(MAX_DURATION_S + 5, 64, 64, fps=1))
    assert long.value.key == "video_too_long" and long.value.values["limit"] == round(MAX_DURATION_S)
    with pytest.raises(VideoProblem) as large:
        sample_frames("huge.mp4", clip(0.5, 4096, 2304, fps=2))
    assert large.value.key == "video_too_large" and large.value.values["width"] == 4096


def test_a_file_that_is_not_a_video_or_is_cut_short_says_so():
    with pytest.raises(VideoProblem) as lying:
        frames_isolated("cat.mp4", b"\x89PNG\r\n\x1a\n" + bytes(2000))
    assert lying.value.key == "video_unreadable" and lying.value.values == {"name": "cat.mp4"}
    whole = clip(2.0, 320, 240)
    with pytest.raises(VideoProblem) as cut:
        frames_isolated("cut.mp4", whole[: len(whole) // 3])
    assert cut.value.key == "video_unreadable"
