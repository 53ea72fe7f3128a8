import pytest

from atri.titles import clean_title


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
