"""Video in, in a real browser (issue 33): a clip attached in the chat box meets the default model, which
cannot watch it; the offer sends it to the provider's video model, and the request carries the clip as
Qwen-VL's list of frames, within the image limits, with a preview of the frames in the question."""
import base64
import io

import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from atri.video import FRAME_EDGE, FRAMES
from tests.browser import IDLE, NO_CHROMIUM, chromium_available, launch, streamlit_server
from tests.test_browser_documents import attach_and_ask
from tests.test_browser_persistence import ANSWER_END, env_for, open_page
from tests.test_video import clip

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not chromium_available(), reason=NO_CHROMIUM)]


def test_a_clip_goes_to_a_model_that_watches_it_as_frames(fake, database_url, tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(clip(4, width=640, height=360))
    with streamlit_server(env_for(fake, database_url)) as app, sync_playwright() as playwright:
        page = open_page(launch(playwright), app.url)
        attach_and_ask(page, video, "What happens in this clip?")
        expect(page.get_by_text("qwen3-max can't watch videos")).to_be_visible(timeout=60_000)
        assert fake.streamed == [], "nothing goes before the visitor chooses"
        page.get_by_role("button", name="Send to qwen3.5-plus").click()
        answer = page.get_by_test_id("stChatMessage").nth(1)
        expect(answer).to_contain_text(ANSWER_END, timeout=60_000)
        page.wait_for_selector(IDLE, timeout=20_000)
        request = fake.streamed[-1]
        assert request["model"] == "qwen3.5-plus"
        video_parts = [p for p in request["messages"][-1]["content"] if p["type"] == "video"]
        assert len(video_parts) == 1 and len(video_parts[0]["video"]) == FRAMES
        for frame in video_parts[0]["video"]:
            picture = Image.open(io.BytesIO(base64.b64decode(frame.split(",", 1)[1])))
            assert max(picture.size) <= FRAME_EDGE
        question = page.get_by_test_id("stChatMessage").nth(0)
        expect(question).to_contain_text(f"Video: {FRAMES} frames taken evenly")
        expect(question.locator("[data-testid=stImage] img")).to_have_count(FRAMES)
        page.screenshot(path=str(tmp_path / "video.png"))
