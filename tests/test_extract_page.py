"""The Extract page through AppTest, against the fake DashScope server."""
import base64
import io
import json

import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT
from tests.fake_provider import Fault

PAGE = str(ROOT / "app_pages" / "3_Extract.py")
TICKET = {"ticket": {"travel_date": "2013-06-29", "trains": "040", "seat_num": "371", "arrival_site": "开发区",
                     "price": "8.00"},
          "invoice": {"invoice_code": "221021325353", "invoice_number": "10283819"}}


def extract_app():
    st.cache_resource.clear()
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["owner"] = "alice"
    at.run()
    assert not at.exception, at.exception
    return at


def shown(markdown: str) -> str:
    """Text as the visitor reads it (plain_text escapes Markdown and breaks directives with a zero-width space)."""
    return markdown.replace("\\", "").replace("\u200b", "")


def png(color="red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_tutorials_train_ticket_is_extracted_and_shown_as_fields(dashscope_env):
    dashscope_env.script(Fault("answer", text=json.dumps(TICKET, ensure_ascii=False)))
    at = extract_app()
    assert at.selectbox(key="extract_model").value == "dashscope · qwen3.5-plus", "a model that can see is chosen"
    at.button(key="extract_example").click().run()
    assert at.selectbox(key="extract_model").value == "dashscope · qwen3-vl-plus", "the tutorial's model"
    assert "receipt_zh_demo.jpg" in at.text_area(key="extract_urls").value
    at.button(key="extract_start").click().run()
    assert not at.exception, at.exception
    assert any(md.value == "✅ matches the schema" for md in at.markdown)
    fields = dict(zip(at.dataframe[0].value["Field"], at.dataframe[0].value["Value"]))
    assert fields["ticket.arrival_site"] == "开发区" and fields["invoice.invoice_number"] == "10283819"
    [request] = dashscope_env.streamed
    assert request["model"] == "qwen3-vl-plus" and request["response_format"] == {"type": "json_object"}
    assert request["messages"][0]["content"][0]["image_url"]["url"].endswith("receipt_zh_demo.jpg")
    assert any(c.value.startswith("Sources: 1 · 1 valid") for c in at.caption)
    assert [b.label for b in at.get("download_button")] == ["Download CSV", "Download JSON"]


def test_several_uploads_run_at_once_one_row_each_with_repair_and_errors_flagged(dashscope_env):
    dashscope_env.script(Fault("answer", text="```json\n{'name': '小明', 'city': '杭州',}\n```"),
                         Fault("answer", text='{"name": 3}'), Fault("answer", text='{"name": 3}'))
    at = extract_app()
    at.text_area(key="extract_urls").set_value("").run()
    at.file_uploader(key="extract_files").upload("a.png", png(), "image/png").upload("b.png", png("blue"), "image/png").run()
    at.text_area(key="extract_names").set_value("name, city").run()
    at.button(key="extract_start").click().run()
    assert not at.exception, at.exception
    statuses = [md.value for md in at.markdown if md.value.startswith(("✅", "⚠️"))]
    assert sorted(statuses) == ["⚠️ does not match the schema", "✅ matches the schema"]
    assert any("was not strict JSON and was repaired" in w.value for w in at.warning)
    assert any("name: 3 is not of type 'string', 'null'" in shown(w.value) for w in at.warning)
    assert len(dashscope_env.streamed) == 3, "the answer that did not match was asked again once"
    sent = [r["messages"][0]["content"][0]["image_url"]["url"] for r in dashscope_env.streamed[:2]]
    assert all(url.startswith("data:image/png;base64,") for url in sent)
    assert base64.b64decode(sent[0].split(",", 1)[1]) in (png(), png("blue"))


def test_text_with_a_pasted_schema_and_clear_messages_for_bad_input(dashscope_env):
    at = extract_app()
    at.get("button_group")[1].set_value("schema").run()
    at.text_area(key="extract_schema").set_value('{"type": "object", "properties": {"a": {"type": "strin"}}}').run()
    assert at.error[0].value.startswith("This is not a valid JSON Schema: properties/a/type:")
    assert at.button(key="extract_start").disabled
    at.text_area(key="extract_schema").set_value('{"type": "object", "properties": {"city": {"type": "string"}}}').run()
    at.selectbox(key="extract_model").set_value("dashscope · qwen-plus").run()
    at.button(key="extract_start").click().run()
    assert at.error[0].value == "Give an image link, upload an image, or enter text."
    at.text_area(key="extract_urls").set_value("https://example.com/a.jpg\nfile:///etc/passwd").run()
    assert "Ignored a link that is not http(s): file" in shown(at.warning[0].value)
    at.button(key="extract_start").click().run()
    assert "qwen-plus cannot see images: pick a vision model" in shown(at.error[0].value)
    at.get("button_group")[0].set_value("text").run()
    at.button(key="extract_start").click().run()
    assert at.error[0].value == "Give an image link, upload an image, or enter text."
    dashscope_env.script(Fault("answer", text='{"city": "杭州"}'))
    at.text_area(key="extract_text").set_value("我住在杭州。").run()
    at.button(key="extract_start").click().run()
    assert dict(zip(at.dataframe[0].value["Field"], at.dataframe[0].value["Value"])) == {"city": "杭州"}


def test_fields_built_one_by_one(dashscope_env):
    dashscope_env.script(Fault("answer", text='{"name": "Ann", "age": 7}'))
    at = extract_app()
    at.get("button_group")[0].set_value("text").run()
    at.get("button_group")[1].set_value("builder").run()
    assert not at.exception, at.exception
    at.text_area(key="extract_text").set_value("Ann is seven.").run()
    at.button(key="extract_start").click().run()
    sent = dashscope_env.streamed[0]["messages"][0]["content"]
    assert '"name"' in sent and "Ann is seven." in sent


def test_with_no_model_that_can_see_it_opens_on_text(no_key_env):  # only the embedded model, which is blind
    areas = [area.key for area in extract_app().text_area]
    assert "extract_text" in areas and "extract_urls" not in areas, areas
