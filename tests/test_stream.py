import pytest

from atri.stream import ChunkParser, ContentDelta, ContentWasReasoning, Finish, InlineThinkSplitter, ReasoningDelta, UsageReport


def chunk(**delta):
    finish = delta.pop("finish_reason", None)
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def text_of(events, kind):
    return "".join(e.text for e in events if isinstance(e, kind))


def test_dashscope_reasoning_then_content_then_usage():
    parser = ChunkParser()
    events = []
    for c in [chunk(role="assistant", content=None, reasoning_content=""), chunk(reasoning_content="想一想"),
              chunk(content="喵~"), chunk(content="你好", finish_reason="stop"),
              {"choices": [], "usage": {"prompt_tokens": 37, "completion_tokens": 73,
                                        "completion_tokens_details": {"reasoning_tokens": 3},
                                        "prompt_tokens_details": {"cached_tokens": 5}}}]:
        events += parser.feed(c)
    assert text_of(events, ReasoningDelta) == "想一想"
    assert text_of(events, ContentDelta) == "喵~你好"
    assert Finish("stop") in events
    usage = next(e.usage for e in events if isinstance(e, UsageReport))
    assert (usage.prompt_tokens, usage.completion_tokens, usage.reasoning_tokens, usage.cached_tokens) == (37, 73, 3, 5)


def test_vllm_reasoning_field_is_reasoning_too():
    events = ChunkParser().feed(chunk(reasoning="hmm"))
    assert events == [ReasoningDelta("hmm")]


@pytest.mark.parametrize("pieces", [
    ["<think>plan it</think>answer"],
    ["<th", "ink>plan", " it</th", "ink>", "answer"],
    ["<", "think", ">", "plan it", "<", "/", "think>", "\n\nanswer"],
])
def test_inline_think_tags_split_anywhere(pieces):
    parser = ChunkParser(inline_tags=True)
    events = [e for p in pieces for e in parser.feed(chunk(content=p))] + parser.close()
    assert text_of(events, ReasoningDelta) == "plan it"
    assert text_of(events, ContentDelta) == "answer"


def test_lone_closing_tag_turns_earlier_text_into_reasoning():
    splitter = InlineThinkSplitter()
    events = splitter.feed("the user asks") + splitter.feed(" for X</think>X is") + splitter.feed(" 42") + splitter.close()
    assert ContentWasReasoning() in events
    after = events[events.index(ContentWasReasoning()) + 1:]
    assert text_of(after, ContentDelta) == "X is 42"


def test_plain_answer_with_angle_brackets_is_untouched():
    splitter = InlineThinkSplitter()
    events = splitter.feed("a <b> and <") + splitter.feed("/b> c") + splitter.close()
    assert text_of(events, ContentDelta) == "a <b> and </b> c"
    assert not any(isinstance(e, ReasoningDelta) for e in events)


def test_without_inline_parsing_tags_stay_in_the_content():
    events = ChunkParser(inline_tags=False).feed(chunk(content="<think>x</think>y"))
    assert text_of(events, ContentDelta) == "<think>x</think>y"
