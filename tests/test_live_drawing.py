"""How an answer is drawn while it streams (atri.ui.render.LiveAnswer), in AppTest."""
from streamlit.testing.v1 import AppTest


def draw_an_empty_turn_then_the_first_words() -> None:
    from atri.turn import Turn
    from atri.ui.render import LiveAnswer

    drawing = LiveAnswer("en", redraw_s=60)
    drawing.draw(Turn("m", {}, []))  # the request is out, nothing has come back yet
    drawing.draw(Turn("m", {}, [], content="Bubble sort compares neighbours."))  # the first words, a moment later


def test_the_first_words_are_drawn_at_once_however_long_the_redraw_interval():
    at = AppTest.from_function(draw_an_empty_turn_then_the_first_words, default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    assert [m.value for m in at.markdown] == ["Bubble sort compares neighbours. ▌"]
