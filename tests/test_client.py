"""The real openai SDK against the fake DashScope server: what reaches the turn, and how failures read."""
import pytest

from atri.calls import run_turn
from atri.messages import ChatOptions, Message
from atri.providers import catalogue
from atri.request import build_request
from atri.settings import Settings
from tests.fake_provider import GOOD_KEY, MODERATION, QUOTA, RATE_LIMITED, TOO_LONG, Fault

DASHSCOPE = catalogue()["dashscope"]


def finish_turn(fake, key=GOOD_KEY, **options):
    conn = Settings({"DASHSCOPE_API_KEY": key, "DASHSCOPE_BASE_URL": fake.base_url, "ATRI_TIMEOUT_S": "1"}).connection(DASHSCOPE)
    opts = ChatOptions("dashscope", options.pop("model", "qwen3-max"), **options)
    plan = build_request([Message("user", "你好")], opts, DASHSCOPE.model(opts.model), DASHSCOPE)
    turns = list(run_turn(conn, plan))
    return turns[-1], len(turns)


def test_streams_reasoning_content_and_usage(fake):
    turn, updates = finish_turn(fake, thinking=True)
    assert updates > 5, "the answer should arrive in pieces"
    assert turn.reasoning.startswith("Let me think")
    assert turn.content.startswith("Echo: 你好")
    assert turn.finish_reason == "stop"
    assert turn.usage.reasoning_tokens > 0 and not turn.usage.estimated
    assert fake.requests[-1]["enable_thinking"] is True


def test_thinking_budget_bounds_the_reasoning(fake):
    turn, _ = finish_turn(fake, thinking=True, thinking_budget=3)
    assert turn.usage.reasoning_tokens == 3
    assert fake.requests[-1]["thinking_budget"] == 3


def test_json_mode_passes_the_providers_json_word_check(fake):
    turn, _ = finish_turn(fake, json_mode=True, thinking=True)
    assert turn.error is None, turn.error
    assert turn.content.startswith("{")


@pytest.mark.parametrize("fault, kind", [
    (Fault("status", 400, MODERATION), "moderation"),
    (Fault("status", 400, TOO_LONG), "context_too_long"),
    (Fault("status", 429, QUOTA), "quota"),
])
def test_provider_refusals_are_classified(fake, fault, kind):
    fake.script(*[fault] * 3)  # the SDK retries 429 twice by itself
    turn, _ = finish_turn(fake)
    assert turn.error.kind == kind
    assert turn.content == ""


def test_rate_limit_recovers_through_the_sdks_own_retry(fake):
    fake.script(Fault("status", 429, RATE_LIMITED))
    turn, _ = finish_turn(fake)
    assert turn.error is None and turn.content


def test_wrong_key_is_an_auth_error_and_the_key_is_not_echoed(fake):
    turn, _ = finish_turn(fake, key="sk-wrong-secret-123")
    assert turn.error.kind == "auth"
    assert "sk-wrong-secret-123" not in turn.error.detail
    assert "invalid_api_key" in turn.error.detail


def test_a_cut_stream_keeps_the_partial_answer(fake):
    fake.script(Fault("cut", after_chunks=4))
    turn, _ = finish_turn(fake)
    assert turn.error.kind == "interrupted"
    assert turn.content and turn.finish_reason is None


def test_a_stream_that_just_ends_without_finish_reason_is_an_interrupted_answer(fake):
    fake.script(Fault("truncate", after_chunks=4))
    turn, _ = finish_turn(fake)
    assert turn.error is None, "the SDK's iterator simply ends"
    assert turn.content and turn.finish_reason is None
    facts = turn.to_message(ChatOptions("dashscope", "qwen3-max")).facts
    assert facts.interrupted and facts.error_kind == "interrupted"


def test_an_error_event_mid_stream_keeps_the_partial_answer(fake):
    fake.script(Fault("stream_error", after_chunks=4))
    turn, _ = finish_turn(fake)
    assert turn.error.kind == "stream_error"
    assert turn.content


def test_a_chunk_that_is_not_an_object_ends_the_answer_with_what_came_before(fake):
    fake.script(Fault("not_object", after_chunks=4))
    turn, _ = finish_turn(fake)
    assert turn.error.kind == "stream_error" and "not a JSON object" in turn.error.detail
    assert turn.content and turn.finish_reason is None


def test_a_silent_server_times_out(fake):
    fake.first_token_delay_s = 3
    turn, _ = finish_turn(fake)
    assert turn.error.kind == "timeout"


def test_nobody_listening_is_a_connection_error():
    conn = Settings({"DASHSCOPE_API_KEY": "k", "DASHSCOPE_BASE_URL": "http://127.0.0.1:9/v1"}).connection(DASHSCOPE)
    plan = build_request([Message("user", "hi")], ChatOptions("dashscope", "qwen3-max"), DASHSCOPE.model("qwen3-max"), DASHSCOPE)
    turn = list(run_turn(conn, plan))[-1]
    assert turn.error.kind == "connection"


def test_keep_alive_comments_under_load_are_skipped(fake):
    fake.keepalive_comments = True
    turn, _ = finish_turn(fake, thinking=True)
    assert turn.error is None and turn.finish_reason == "stop"
    assert turn.content == "Echo: 你好. Meow~ This answer streams in several small pieces."


def test_length_finish_is_reported(fake):
    fake.script(Fault("length"))
    turn, _ = finish_turn(fake)
    assert turn.finish_reason == "length"


def test_connection_repr_hides_the_key():
    conn = Settings({"DASHSCOPE_API_KEY": "sk-hidden"}).connection(DASHSCOPE)
    assert "sk-hidden" not in repr(conn)


def test_credentials_in_a_gateway_url_are_not_recorded(fake):
    from atri.turn import public_url

    assert public_url("https://user:s3cret@gateway.example:8443/v1") == "https://gateway.example:8443/v1"
    assert public_url(fake.base_url) == fake.base_url
