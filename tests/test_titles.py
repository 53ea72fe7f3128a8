import pytest

from atri.messages import Message
from atri.providers import catalogue
from atri.settings import Settings
from atri.titles import clean_title, suggest_title
from tests.fake_provider import GOOD_KEY

DASHSCOPE = catalogue()["dashscope"]


@pytest.mark.parametrize("reply, title", [
    ("星河映照海，", "星河映照海"),  # the embedded model's title for a haiku, as the sidebar showed it
    ("Title: Bubble Sort in Python.", "Bubble Sort in Python"),
    ("**标题：** 冒泡排序。\n\n解释如下", "冒泡排序"),
    ('"Space films?"', "Space films?"),
    ("\n\n  Rust lifetimes  \n", "Rust lifetimes"),
    ('"Bubble Sort".', "Bubble Sort"),
    ("**Bubble Sort**.", "Bubble Sort"),
    ("《三体》。", "三体"),
    ("## Learning C#", "Learning C#"),
    ("Elections in the U.S.", "Elections in the U.S."),
    ("Wait for it...", "Wait for it..."),
    ("。", ""),
])
def test_a_title_is_the_words_alone(reply, title):
    assert clean_title(reply) == title


def test_a_model_that_only_streams_gets_a_title_too(fake):
    conn = Settings({"DASHSCOPE_API_KEY": GOOD_KEY, "DASHSCOPE_BASE_URL": fake.base_url}).connection(DASHSCOPE)
    model = DASHSCOPE.model("qwen3-235b-a22b")
    assert model.stream_only
    title = suggest_title(conn, model, Message("user", "Bubble sort"), Message("assistant", "Here it is."))
    assert title and title.startswith("Echo"), "the fake answers a title request with its echo"
    asked = fake.requests[-1]
    assert asked["stream"] is True and asked["enable_thinking"] is False and asked["max_tokens"] == 24


def test_a_model_that_only_streams_refuses_a_call_that_does_not(fake):
    """The fake provider is faithful here: before titles streamed, such a model got no title at all."""
    import httpx2

    reply = httpx2.post(f"{fake.base_url}/chat/completions", headers={"Authorization": f"Bearer {GOOD_KEY}"},
                        json={"model": "qwen3-235b-a22b", "messages": [{"role": "user", "content": "hi"}],
                              "enable_thinking": False})
    assert reply.status_code == 400 and "only support stream mode" in reply.text
