from atri.messages import ChatOptions, Message
from atri.providers import catalogue
from atri.request import JSON_INSTRUCTION, build_request

DASHSCOPE = catalogue()["dashscope"]


def plan_for(history, model="qwen3-max", **options):
    opts = ChatOptions("dashscope", model, **options)
    return build_request(history, opts, DASHSCOPE.model(model), DASHSCOPE)


def test_history_sends_content_but_never_reasoning():
    history = [Message("user", "我是小明"), Message("assistant", "喵~小明!", reasoning="用户自称小明"),
               Message("user", "我是谁")]
    sent = plan_for(history, system_prompt="persona").kwargs["messages"]
    assert sent == [{"role": "system", "content": "persona"}, {"role": "user", "content": "我是小明"},
                    {"role": "assistant", "content": "喵~小明!"}, {"role": "user", "content": "我是谁"}]
    assert "用户自称小明" not in str(sent)


def test_empty_failed_answer_is_not_resent():
    history = [Message("user", "a"), Message("assistant", ""), Message("user", "b")]
    assert [m["role"] for m in plan_for(history).kwargs["messages"]] == ["user", "user"]


def test_images_become_seed_shaped_parts():
    url = "https://example.com/cat.png"
    sent = plan_for([Message("user", "这张图显示了什么", images=[url])], model="qwen3-vl-plus").kwargs["messages"]
    assert sent[0]["content"] == [{"type": "image_url", "image_url": {"url": url}},
                                  {"type": "text", "text": "这张图显示了什么"}]


def test_thinking_goes_in_extra_body_with_budget_capped_by_model():
    plan = plan_for([Message("user", "hi")], thinking=True, thinking_budget=10_000_000)
    assert plan.kwargs["extra_body"] == {"enable_thinking": True, "thinking_budget": 81920}
    assert plan.kwargs["stream_options"] == {"include_usage": True}


def test_thinking_off_is_sent_explicitly_for_models_that_think_by_default():
    plan = plan_for([Message("user", "hi")], model="qwen3.5-plus", thinking=False)
    assert plan.kwargs["extra_body"] == {"enable_thinking": False}


def test_always_thinking_models_get_no_enable_thinking():
    plan = plan_for([Message("user", "hi")], model="qwq-plus", thinking=True)
    assert "extra_body" not in plan.kwargs


def test_json_mode_adds_the_json_word_when_missing():
    plan = plan_for([Message("user", "hello")], json_mode=True, system_prompt="You are Atri.")
    assert plan.kwargs["response_format"] == {"type": "json_object"}
    assert plan.kwargs["messages"][0]["content"].endswith(JSON_INSTRUCTION)
    assert "note_json_word_added" in plan.notes


def test_json_mode_leaves_a_prompt_that_already_says_json():
    plan = plan_for([Message("user", "answer in JSON please")], json_mode=True, system_prompt="You are Atri.")
    assert plan.kwargs["messages"][0]["content"] == "You are Atri."
    assert plan.notes == []


def test_json_mode_turns_thinking_off_on_models_that_cannot_do_both():
    plan = plan_for([Message("user", "json")], json_mode=True, thinking=True, thinking_budget=200)
    assert plan.kwargs["extra_body"] == {"enable_thinking": False}
    assert "note_json_no_thinking" in plan.notes


def test_unknown_dashscope_models_are_guessed_from_their_id():
    assert DASHSCOPE.model("qwen3-vl-8b-thinking").stream_only
    assert DASHSCOPE.model("qwen3.6-plus").thinking_default
    assert not DASHSCOPE.model("qwen-max-latest").thinking_default


def test_ollama_is_warned_that_it_cannot_fetch_image_links():
    ollama = catalogue()["ollama"]
    opts = ChatOptions("ollama", "qwen2.5vl:3b")
    plan = build_request([Message("user", "what is this?", images=["https://example.com/a.png"])], opts,
                         ollama.model("qwen2.5vl:3b"), ollama)
    assert "note_images_need_data" in plan.notes
    uploaded = build_request([Message("user", "and this?", images=["data:image/png;base64,AAAA"])], opts,
                             ollama.model("qwen2.5vl:3b"), ollama)
    assert "note_images_need_data" not in uploaded.notes


def test_the_local_model_is_capped_at_its_max_output():
    local = catalogue()["local"]
    model = local.models[0]
    plan = build_request([Message("user", "hi")], ChatOptions("local", model.id), model, local)
    assert plan.kwargs["max_tokens"] == model.max_output
    assert "max_tokens" not in plan_for([Message("user", "hi")]).kwargs  # providers pick their own default


def test_a_stored_request_refers_to_the_thread_and_expands_back_exactly():
    from atri.request import MESSAGE_REFS, compact_request, expand_request

    thread = [Message("user", "看图", images=["https://example.com/a.png"], id=1), Message("assistant", "", id=2),
              Message("user", "然后呢", id=3), Message("assistant", "一只猫", id=4), Message("user", "几岁?", id=5)]
    plan = plan_for(thread, model="qwen3-vl-plus", system_prompt="persona")
    record = {"base_url": "https://x/v1", **plan.kwargs}
    stored = compact_request(record, thread)
    assert stored["messages"] == {"system": "persona", MESSAGE_REFS: [1, 2, 3, 4, 5]}
    assert expand_request(stored, {m.id: m for m in thread}) == record
    unsaved = [Message("user", "no id yet")]
    assert compact_request(record, unsaved) is record, "kept whole when it cannot be referred to"


def test_every_kind_of_call_goes_through_one_builder_with_the_providers_rules():
    from atri.context.summaries import summary_request
    from atri.messages import Message as Msg
    from atri.titles import title_request

    dashscope, local = catalogue()["dashscope"], catalogue()["local"]
    hybrid = dashscope.model("qwen-plus")
    title = title_request(hybrid, dashscope, "你好", "喵~")
    summary = summary_request(hybrid, dashscope, [Msg("user", "a"), Msg("assistant", "b")], (0, 2), None)
    assert title["extra_body"] == {"enable_thinking": False} and title["stream"] is True, "every call streams"
    assert summary["extra_body"] == {"enable_thinking": False} and summary["max_tokens"] == 400
    small = local.models[0]
    assert title_request(small, local, "q", "a")["max_tokens"] == 24, "the embedded model's output cap keeps the smaller"
    assert title_request(dashscope.model("qwq-plus"), dashscope, "q", "a") is None, "always-thinking: no title call"
    open_source = dashscope.model("qwen3-235b-a22b")
    assert open_source.stream_only and title_request(open_source, dashscope, "q", "a")["extra_body"] == {
        "enable_thinking": False}, "a stream-only model gets a title call, with thinking off"


def test_a_model_that_can_see_is_offered_by_the_provider_that_has_one():
    from atri.providers import LOCAL

    providers = catalogue()
    assert providers["dashscope"].seeing_model().id == "qwen3.5-plus", "a current natively multimodal Qwen first"
    assert providers["dashscope"].seeing_model(needs_video=True).video
    assert providers["openai"].seeing_model().vision and providers["openai"].seeing_model(needs_video=True) is None
    assert providers["deepseek"].seeing_model() is None, "nothing to offer: the page says so instead"
    assert providers[LOCAL].seeing_model() is None, "offline, no vision model ships in a package (searched 2026-12)"


def tiny_jpeg() -> str:
    import base64
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, format="JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()


FRAME = tiny_jpeg()


def test_a_clip_goes_as_qwen_vl_frames_to_a_model_that_watches_and_stays_behind_for_one_that_only_sees():
    from atri.request import NO_VIDEO, compact_request, expand_request

    url = "https://example.com/cat.png"
    question = Message("user", "视频里发生了什么", images=[url], video=[FRAME, FRAME], id=1)
    watched = plan_for([question], model="qwen3.5-plus")
    assert watched.kwargs["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": url}}, {"type": "video", "video": [FRAME, FRAME]},
        {"type": "text", "text": "视频里发生了什么"}]
    seen = plan_for([question], model="qwen3-vl-32b-thinking")
    assert [p["type"] for p in seen.kwargs["messages"][0]["content"]] == ["image_url", "text"]
    assert "note_model_no_video" in seen.notes
    for plan in (watched, seen):
        stored = compact_request(plan.kwargs, [question])
        assert stored["messages"].get(NO_VIDEO) is (True if plan is seen else None)
        assert expand_request(stored, {1: question}) == plan.kwargs, "rebuilt as it was sent"
