"""Images an MCP tool returns (issue 32, row 2): kept in the tool step within the limits of an upload, shown to the
visitor as thumbnails, and sent to a model that can see on the next round as image parts of a user message after
the tool results; a model that cannot see reads their names only. The real `@modelcontextprotocol/server-everything`
(its get-tiny-image tool) and the fake DashScope server."""
import io
import json
import struct
import zlib

import pytest
from PIL import Image

from atri.answers import Answerer, TurnSetup
from atri.context import ContextSettings
from atri.mcp_tools import McpHub, McpImage, parse_config
from atri.messages import ChatOptions, Message
from atri.providers import catalogue
from atri.request import expand_request
from atri.settings import Connection
from atri.store import Store
from atri.tokens import rough_count
from atri.tool_images import MAX_ROUND_IMAGES, MAX_STEP_IMAGES, ReturnedImages, checked_images, images_message, without_broken_chunks
from atri.tools import Toolbox
from tests.fake_provider import GOOD_KEY
from tests.test_mcp import everything  # noqa: F401 - the fixture: server-everything from npm

DASHSCOPE = catalogue()["dashscope"]
TINY = "Show me [[everything__get-tiny-image]]"


def png(width=24, height=24) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "teal").save(buffer, format="PNG")
    return buffer.getvalue()


def chunk(kind: bytes, body: bytes, crc: int | None = None) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) if crc is None else crc)


def test_a_png_with_a_broken_ancillary_chunk_is_read_as_a_browser_reads_it():
    good = png()
    broken = good[:33] + chunk(b"iCCP", b"profile\x00\x00junk", crc=1) + good[33:]
    [image], notes = checked_images([McpImage("image/png", broken)])
    assert notes == [] and image.url.startswith("data:image/png;base64,") and image.thumbnail.startswith("data:image/webp")
    assert without_broken_chunks(broken) == good and without_broken_chunks(b"GIF89a...") == b"GIF89a..."


def test_images_beyond_the_limits_of_an_upload_are_left_out_with_a_note():
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 20_000, 20_000, 8, 2, 0, 0, 0))
    bomb = b"\x89PNG\r\n\x1a\n" + header + chunk(b"IEND", b"")
    images, notes = checked_images([McpImage("image/png", bomb), McpImage("image/png", b"not a picture"),
                                    McpImage("image/png", bytes(8 * 1024 * 1024))]
                                   + [McpImage("image/png", png(), for_model=False)] * (MAX_STEP_IMAGES + 1))
    assert len(images) == MAX_STEP_IMAGES and not any(image.for_model for image in images)
    assert notes[0] == "[image 1: not kept, 400 megapixels, more than 40]"
    assert notes[1].startswith("[image 2: not kept, not an image") and notes[2] == "[image 3: not kept, larger than 7 MB]"
    assert notes[3] == f"[image {4 + MAX_STEP_IMAGES}: not kept, at most {MAX_STEP_IMAGES} images are kept from one call]"


def test_one_user_message_carries_a_rounds_images_after_a_text_naming_their_tool():
    url = checked_images([McpImage("image/png", png())])[0][0].url
    message = images_message([ReturnedImages("a__draw", "c1", (url,)), ReturnedImages("b__none", "c2", ()),
                              ReturnedImages("b__many", "c3", (url,) * 20)])
    texts = [part["text"] for part in message["content"] if part["type"] == "text"]
    assert message["role"] == "user" and texts == ["The tool a__draw (call c1) returned this image:",
                                                   f"The tool b__many (call c3) returned these {MAX_ROUND_IMAGES - 1} images:"]
    assert sum(part["type"] == "image_url" for part in message["content"]) == MAX_ROUND_IMAGES
    assert images_message([ReturnedImages("a", "c", ())]) is None


@pytest.fixture(scope="module")
def hub(everything):  # noqa: F811
    hub = McpHub(parse_config(json.dumps({"mcpServers": {"everything": {"command": everything, "args": ["stdio"]}}})))
    hub.wait_ready(60)
    assert hub.servers["everything"].error is None, hub.servers["everything"].error
    yield hub
    hub.close()


def answer(fake, tmp_path, hub, model):
    store = Store(f"sqlite:///{tmp_path / 'atri.db'}")
    answerer = Answerer(store)
    try:
        cid = store.create_conversation("alice", TINY)
        store.append("alice", cid, Message("user", TINY))
        toolbox = Toolbox(hub.tools({"everything"}))
        setup = TurnSetup(ChatOptions("dashscope", model, tools=[tool.name for tool in toolbox.tools]),
                          Connection(DASHSCOPE, fake.base_url, GOOD_KEY), DASHSCOPE.model(model), rough_count,
                          ContextSettings(), tools=toolbox)
        assert answerer.start("alice", cid, setup).done.wait(60)
        return store.messages("alice", cid)
    finally:
        answerer.close()


def image_parts(request):
    return [part for message in request["messages"] if isinstance(message["content"], list)
            for part in message["content"] if part.get("type") == "image_url"]


def test_a_vision_model_gets_the_picture_a_tool_returned_and_the_step_keeps_it(fake, tmp_path, hub):
    question, reply = answer(fake, tmp_path, hub, "qwen3-vl-plus")
    [step] = reply.facts.tool_steps
    assert step["name"] == "everything__get-tiny-image" and "[image 1: image/png" in step["result"]
    [image] = step["images"]
    assert image["thumbnail"].startswith("data:image/webp;base64,") and "for_model" not in image
    first, second = fake.streamed
    assert image_parts(first) == []
    *_, tool, pictures = second["messages"]
    assert tool["role"] == "tool" and tool["tool_call_id"] == step["id"] and isinstance(tool["content"], str)
    assert pictures["role"] == "user" and pictures["content"][0] == {
        "type": "text", "text": f"The tool everything__get-tiny-image (call {step['id']}) returned this image:"}
    [part] = image_parts(second)
    assert part["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGgo")
    assert reply.content.endswith("(I see 1 image)") and reply.facts.error_kind is None
    stored = json.dumps(reply.to_dict())
    assert "data:image/png" not in stored, "the answer keeps the thumbnail, not the original"
    # the stored request is the first round's, rebuilt exactly from the history it references
    assert expand_request(reply.facts.request, {question.id: question})["messages"] == first["messages"]


def test_a_model_that_cannot_see_reads_the_images_name_only(fake, tmp_path, hub):
    _, reply = answer(fake, tmp_path, hub, "qwen-plus")
    [step] = reply.facts.tool_steps
    assert len(step["images"]) == 1, "the visitor still sees it"
    second = fake.streamed[1]
    assert image_parts(second) == [] and second["messages"][-1]["role"] == "tool"
    assert "[image 1: image/png" in reply.content and "I see" not in reply.content
