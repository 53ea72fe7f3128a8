"""DashScope's explicit context cache, asked for (issue 31): a stable prefix of ≥ 1,024 tokens (the persona, whole
documents, the tool schemas) is marked with cache_control on the models the catalogue flags, byte for byte the same
each turn; the fake DashScope server writes it, then hits it; the chat page says what it wrote, hit and saved."""
import pytest

from atri.context import ContextSettings, plan_context
from atri.context.plan import DocumentContext
from atri.documents import Excerpt
from atri.messages import ChatOptions, Message, RequestRecord, validated
from atri.providers import catalogue
from atri.request import CACHE_MARK, EXPLICIT_CACHE_MIN_TOKENS, build_request, compact_request, expand_request
from atri.tokens import rough_count
from tests.fake_provider import EXPLICIT_CACHE_TTL_S, ExplicitCache

DASHSCOPE = catalogue()["dashscope"]
LONG_PERSONA = "You are Atri, a helpful assistant who answers from the handbook below. " * 80  # ≈ 1,400 tokens
SHORT_PERSONA = "You are Atri, a helpful assistant."


def request_for(history, model="qwen3-max", system_prompt=LONG_PERSONA, stable_prefix=None, tools=None, **options):
    opts = ChatOptions("dashscope", model, system_prompt=system_prompt, **options)
    stable = system_prompt if stable_prefix is None else stable_prefix
    return build_request(history, opts, DASHSCOPE.model(model), DASHSCOPE, tools=tools, stable_prefix=stable,
                         count=rough_count).kwargs


def test_a_long_stable_system_prompt_is_marked_for_the_explicit_cache():
    assert rough_count(LONG_PERSONA) >= EXPLICIT_CACHE_MIN_TOKENS
    system = request_for([Message("user", "hi")])["messages"][0]
    assert system == {"role": "system", "content": [{"type": "text", "text": LONG_PERSONA.strip(),
                                                     "cache_control": {"type": "ephemeral"}}]}
    assert CACHE_MARK == {"type": "ephemeral"}


def test_a_short_system_prompt_is_not_marked():
    system = request_for([Message("user", "hi")], system_prompt=SHORT_PERSONA)["messages"][0]
    assert system == {"role": "system", "content": SHORT_PERSONA}


def test_tool_schemas_count_towards_the_prefix_worth_caching():
    schema = {"type": "function", "function": {"name": "lookup", "description": "Looks things up. " * 300,
                                               "parameters": {"type": "object", "properties": {}}}}
    marked = request_for([Message("user", "hi")], system_prompt=SHORT_PERSONA, tools=[schema])["messages"][0]
    assert isinstance(marked["content"], list) and marked["content"][0]["cache_control"] == {"type": "ephemeral"}


@pytest.mark.parametrize("model", ["qwen3-vl-plus", "qwq-plus"])
def test_a_model_without_explicit_caching_is_not_marked(model):
    assert not DASHSCOPE.model(model).explicit_cache
    system = request_for([Message("user", "hi")], model=model)["messages"][0]
    assert system["content"] == LONG_PERSONA.strip()


def test_without_a_token_counter_nothing_is_marked():
    opts = ChatOptions("dashscope", "qwen3-max", system_prompt=LONG_PERSONA)
    plan = build_request([Message("user", "hi")], opts, DASHSCOPE.model("qwen3-max"), DASHSCOPE,
                         stable_prefix=LONG_PERSONA.strip())
    assert plan.kwargs["messages"][0]["content"] == LONG_PERSONA.strip()


def test_only_the_stable_start_is_marked_and_stays_byte_for_byte_the_same_each_turn():
    persona = LONG_PERSONA.strip()
    first = request_for([Message("user", "hi")], system_prompt=persona + "\n\nSummary: nothing yet.",
                        stable_prefix=persona)
    second = request_for([Message("user", "hi"), Message("assistant", "hello"), Message("user", "and?")],
                         system_prompt=persona + "\n\nSummary: they said hi.", stable_prefix=persona,
                         json_mode=True)
    first_parts, second_parts = first["messages"][0]["content"], second["messages"][0]["content"]
    assert first_parts[0] == second_parts[0] == {"type": "text", "text": persona, "cache_control": {"type": "ephemeral"}}
    assert first_parts[1] == {"type": "text", "text": "\n\nSummary: nothing yet."}
    assert "Summary: they said hi." in second_parts[1]["text"] and "JSON" in second_parts[1]["text"]
    assert "cache_control" not in second_parts[1]


def test_the_context_plan_names_the_persona_and_whole_documents_as_stable_and_not_a_summary_or_excerpts():
    thread = [Message("user", "what does page 2 say?")]
    whole = DocumentContext([Excerpt("handbook.pdf", 1, "Chapter one.", 1.0, None)], whole=True)
    plan = plan_context(thread, ContextSettings(), "Persona.", 100_000, rough_count, documents=whole)
    assert plan.stable_prefix.startswith("Persona.") and "Chapter one." in plan.stable_prefix
    assert plan.system_prompt.startswith(plan.stable_prefix)
    excerpts = DocumentContext([Excerpt("handbook.pdf", 1, "Chapter one.", 1.0, None)], whole=False)
    plan = plan_context(thread, ContextSettings(), "Persona.", 100_000, rough_count, documents=excerpts)
    assert plan.stable_prefix == "Persona." and "Chapter one." in plan.system_prompt


def test_a_marked_request_round_trips_through_compaction():
    thread = [Message("user", "看图", images=["https://example.com/a.png"], id=1), Message("assistant", "一只猫", id=2),
              Message("user", "几岁?", id=3)]
    for model in ("qwen3-max", "qwen3-vl-plus"):  # the first cannot see (text only), the second sends the image
        record = {"base_url": "https://x/v1", **request_for(thread, model=model)}
        stored = compact_request(record, thread)
        assert isinstance(stored["messages"], dict), "referred to, not kept whole"
        assert expand_request(stored, {m.id: m for m in thread}) == record
    marked = {"base_url": "https://x/v1", **request_for(thread)}
    stored = compact_request(marked, thread)
    assert isinstance(stored["messages"]["system"], list)
    assert validated(RequestRecord, stored, stored=True) == stored, "a stored answer's request is read back as written"


def test_the_fake_writes_a_marked_prefix_of_1024_tokens_then_hits_it_for_five_minutes():
    cache, now = ExplicitCache(), [0.0]
    cache.clock = lambda: now[0]
    long_text = "x" * 3 * 1500  # 1,500 tokens as the fake counts them

    def messages(text, question):
        return [{"role": "system", "content": [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]},
                {"role": "user", "content": question}]

    first = cache.details(messages(long_text, "a"))
    assert first["cache_creation_input_tokens"] == 1500 and first["cached_tokens"] == 0
    assert first["cache_type"] == "ephemeral"
    now[0] += EXPLICIT_CACHE_TTL_S - 1
    assert cache.details(messages(long_text, "b")) == {"cached_tokens": 1500, "cache_type": "ephemeral"}
    now[0] += EXPLICIT_CACHE_TTL_S - 1  # a hit started its five minutes again
    assert cache.details(messages(long_text, "c"))["cached_tokens"] == 1500
    now[0] += EXPLICIT_CACHE_TTL_S + 1
    assert cache.details(messages(long_text, "d"))["cache_creation_input_tokens"] == 1500, "expired: written again"
    short = "x" * 3 * 1000
    assert cache.details(messages(short, "a")) == cache.details(messages(short, "b")) == {"cached_tokens": 0}
    assert cache.details([{"role": "user", "content": long_text}]) == {"cached_tokens": 0}, "unmarked: no explicit cache"


def chat_captions(at):
    return [c.value for c in at.caption]


def test_a_long_persona_is_cached_and_the_second_answer_shows_its_hit_and_saving(app, dashscope_env):
    from tests.test_app import send

    app.text_area(key="system_prompt").set_value(LONG_PERSONA).run()
    send(app, "hi")
    send(app, "and again")
    sent = dashscope_env.streamed
    assert [isinstance(r["messages"][0]["content"], list) for r in sent] == [True, True]
    assert sent[0]["messages"][0]["content"][0] == sent[1]["messages"][0]["content"][0], "the same prefix each turn"
    facts = [c for c in chat_captions(app) if c.startswith("qwen3-max")]
    assert len(facts) == 2, facts
    assert "cache: wrote " in facts[0] and "/ hit 0 tokens" in facts[0] and "more to write the cache" in facts[0]
    assert "cache: wrote 0 / hit " in facts[1] and "saved ¥" in facts[1]
    totals = next(c for c in chat_captions(app) if c.startswith("This chat:"))
    assert "saved ¥" in totals and totals.endswith("by the cache"), "a write paid back by the first hit"


def test_the_usage_page_adds_up_what_the_cache_saved_in_its_own_column(app, dashscope_env):
    from tests.test_app import send
    from tests.test_usage_page import usage_app

    app.text_area(key="system_prompt").set_value(LONG_PERSONA).run()
    send(app, "hi")
    send(app, "and again")
    usage = usage_app(owner=app.session_state["owner"])
    by_model = usage.dataframe[0].value
    assert list(by_model["model"]) == ["qwen3-max"] and str(list(by_model["saved"])[0]).startswith("¥")
    assert any("context cache took ¥" in c.value for c in usage.caption)


def test_a_marked_system_prompt_goes_whole_and_unmarked_over_dashscopes_own_protocol():
    from atri.dashscope_native import native_body
    from atri.request import cache_marked

    prompt = "You are Atri. " * 400 + "\n\nSummary so far: cats."
    marked = {"model": "qwen3-max", "messages": [{"role": "system", "content": cache_marked(prompt, prompt[:5600])},
                                                 {"role": "user", "content": "news?"}]}
    sent = native_body(marked)["input"]["messages"]
    assert sent[0] == {"role": "system", "content": prompt}, "the same words, as one text"
