"""Extraction to validated JSON against the fake DashScope server (real SDK, real HTTP)."""
import asyncio
import csv
import io
import json
import time

import pytest

from atri.calls import Target
from atri.extract import (
    TRAIN_TICKET_FIELDS,
    FieldSpec,
    Source,
    extract_many,
    fields_from_names,
    flatten,
    schema_from_fields,
    to_csv,
    to_json,
    train_ticket_schema,
)
from atri.pricing import price_table
from atri.providers import catalogue
from atri.schemas import ExtractInputError, parse_schema, read_answer
from atri.settings import Settings
from tests.fake_provider import GOOD_KEY, Fault

DASHSCOPE = catalogue()["dashscope"]
TICKET = {"ticket": {"travel_date": "2013-06-29", "trains": "040", "seat_num": "371", "arrival_site": "开发区",
                     "price": "8.00"},
          "invoice": {"invoice_code": "221021325353", "invoice_number": "10283819"}}
IMAGE = "https://example.com/receipt_zh_demo.jpg"


def target(fake, model="qwen3-vl-plus"):
    conn = Settings({"DASHSCOPE_API_KEY": GOOD_KEY, "DASHSCOPE_BASE_URL": fake.base_url}).connection(DASHSCOPE)
    return Target(conn, DASHSCOPE.model(model), price_table().get(model))


def run(fake, sources, schema=None, model="qwen3-vl-plus", concurrency=4):
    return asyncio.run(extract_many(target(fake, model), sources, schema or train_ticket_schema(), concurrency))


def test_the_tutorials_train_ticket_fields_make_a_nested_schema():
    schema = train_ticket_schema()
    assert schema["required"] == ["ticket", "invoice"]
    assert list(schema["properties"]["ticket"]["properties"]) == ["travel_date", "trains", "seat_num",
                                                                  "arrival_site", "price"]
    assert read_answer(json.dumps(TICKET, ensure_ascii=False), schema).valid
    assert fields_from_names(TRAIN_TICKET_FIELDS.replace("\n", "， "))[0].name == "ticket.travel_date"


def test_fields_built_one_by_one_carry_types_and_dates_are_checked():
    schema = schema_from_fields([FieldSpec("name"), FieldSpec("age", "integer"),
                                 FieldSpec("born", "date", "birth date"), FieldSpec("note", required=False)])
    assert schema["required"] == ["name", "age", "born"]
    reading = read_answer('{"name": "小明", "age": "twelve", "born": "13 June"}', schema)
    assert not reading.valid
    assert reading.errors == ["age: 'twelve' is not of type 'integer', 'null'",
                              "born: '13 June' is not a 'date'"]


@pytest.mark.parametrize("names, key", [("", "extract_fields_empty"), ("a, a", "extract_field_twice"),
                                        ("ticket, ticket.price", "extract_field_twice"), ("a..b", "extract_field_bad"),
                                        ('na"me', "extract_field_bad")])
def test_bad_field_lists_say_what_is_wrong(names, key):
    with pytest.raises(ExtractInputError) as refused:
        fields_from_names(names)
    assert refused.value.key == key


def test_a_pasted_schema_that_is_not_json_or_not_a_schema_says_where():
    with pytest.raises(ExtractInputError) as refused:
        parse_schema('{"type": "object",\n "properties": {,}}')
    assert refused.value.key == "extract_schema_not_json" and refused.value.values["line"] == 2
    with pytest.raises(ExtractInputError) as refused:
        parse_schema('{"type": "object", "properties": {"a": {"type": "strin"}}}')
    assert refused.value.key == "extract_schema_invalid" and "properties/a/type" in refused.value.values["reason"]
    with pytest.raises(ExtractInputError) as refused:
        parse_schema('{"type": "array"}')
    assert refused.value.key == "extract_schema_not_object"
    with pytest.raises(ExtractInputError) as refused:
        parse_schema('{"properties": {"a": {"$ref": "https://example.com/s.json"}}}')
    assert refused.value.key == "extract_schema_invalid"


def test_broken_json_is_repaired_and_flagged():
    schema = train_ticket_schema()
    broken = "```json\n{'ticket': {'travel_date': '2013-06-29', 'trains': '040', 'seat_num': '371', " \
             "'arrival_site': '开发区', 'price': '8.00',}, 'invoice': {'invoice_code': '221021325353', " \
             "'invoice_number': '10283819'"
    reading = read_answer(broken, schema)
    assert reading.repaired and reading.valid and reading.data == TICKET
    hopeless = read_answer("I could not read the ticket, sorry.", schema)
    assert hopeless.data is None and hopeless.parse_error


def test_an_image_is_sent_in_json_mode_with_the_schema_and_a_valid_answer_is_taken(fake):
    fake.script(Fault("answer", text=json.dumps(TICKET, ensure_ascii=False)))
    [result] = run(fake, [Source(IMAGE, image=IMAGE)])
    assert result.status == "valid" and result.data == TICKET and not result.retried
    [request] = fake.streamed
    assert request["response_format"] == {"type": "json_object"} and request["enable_thinking"] is False
    content = request["messages"][-1]["content"]
    assert content[0] == {"type": "image_url", "image_url": {"url": IMAGE}}
    assert "JSON Schema" in content[1]["text"] and "invoice_number" in content[1]["text"]
    assert result.prompt_tokens > 0 and result.cost > 0
    assert flatten(result.data)["ticket.arrival_site"] == "开发区"


def test_an_answer_that_does_not_validate_is_asked_again_once_with_the_errors(fake):
    wrong = {**TICKET, "ticket": {**TICKET["ticket"], "price": 8}}
    fake.script(Fault("answer", text=json.dumps(wrong)), Fault("answer", text=json.dumps(TICKET, ensure_ascii=False)))
    [result] = run(fake, [Source(IMAGE, image=IMAGE)])
    assert result.status == "valid" and result.retried and result.data["ticket"]["price"] == "8.00"
    second = fake.streamed[1]["messages"]
    assert second[-2]["role"] == "assistant" and "ticket.price: 8 is not of type 'string', 'null'" in second[-1]["content"]


def test_an_answer_still_wrong_after_the_retry_is_flagged_with_its_errors(fake):
    wrong = {"ticket": {"price": 8}}
    fake.script(Fault("answer", text=json.dumps(wrong)), Fault("answer", text=json.dumps(wrong)))
    [result] = run(fake, [Source(IMAGE, image=IMAGE)])
    assert result.status == "invalid" and result.retried and len(fake.streamed) == 2
    assert "(top): 'invoice' is a required property" in result.reading.errors
    assert json.loads(to_json([result]))[0]["errors"] == result.reading.errors


def test_text_goes_to_any_model_but_an_image_needs_one_that_sees(fake):
    fake.script(Fault("answer", text='{"name": "小明", "city": "杭州"}'))
    schema = schema_from_fields(fields_from_names("name, city"))
    [result] = run(fake, [Source("text", text="我叫小明,住在杭州。")], schema, model="qwen-plus")
    assert result.status == "valid" and result.data == {"name": "小明", "city": "杭州"}
    assert "我叫小明" in fake.streamed[0]["messages"][-1]["content"]
    with pytest.raises(ExtractInputError) as refused:
        run(fake, [Source(IMAGE, image=IMAGE)], model="qwen-plus")
    assert refused.value.key == "extract_needs_vision" and refused.value.values == {"model": "qwen-plus"}


def test_several_images_run_at_once_and_one_failure_keeps_the_others(fake):
    fake.first_token_delay_s = 0.4
    fake.script(Fault("status", 400, {"error": {"code": "InvalidParameter", "message": "image too small"}}, when="坏"))
    sources = [Source(f"{IMAGE}?{i}", text=f"第{i}张" if i != 2 else "坏", image=f"{IMAGE}?{i}") for i in range(4)]
    schema = schema_from_fields(fields_from_names("reply, turns"))
    started = time.perf_counter()
    results = run(fake, sources, schema, concurrency=4)
    wall = time.perf_counter() - started
    assert [r.status for r in results] == ["invalid", "invalid", "failed", "invalid"]  # the echo's turns is a number
    assert results[2].error_kind == "bad_request" and "image too small" in results[2].error_detail
    assert wall < 2.0, f"4 images of 0.4 s (and a retry each) took {wall:.2f} s"
    lines = list(csv.reader(io.StringIO(to_csv(results).decode("utf-8-sig"))))
    assert lines[0] == ["source", "reply", "turns", "status", "errors"] and len(lines) == 5
    assert lines[3][-2:] == ["failed", "bad_request: InvalidParameter — image too small"]
