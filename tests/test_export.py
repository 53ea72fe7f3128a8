from atri.export import to_markdown
from atri.messages import AnswerFacts, Message


def test_markdown_export_reads_like_the_chat():
    messages = [
        Message("user", "这张图显示了什么", images=["https://example.com/a.png", "data:image/png;base64,AAAA"]),
        Message("assistant", "一只猫。", reasoning="看图\n是猫", facts=AnswerFacts(model="qwen3-vl-plus", finish_reason="stop")),
        Message("user", "再说一遍"),
        Message("assistant", "一只", facts=AnswerFacts(model="qwen3-vl-plus", error_kind="stopped")),
    ]
    text = to_markdown("猫图", messages)
    assert text.startswith("# 猫图\n")
    assert "![image 1](https://example.com/a.png)" in text and "base64" not in text
    assert "## 🐱 Atri (qwen3-vl-plus)" in text and "> 看图\n> 是猫" in text
    assert text.index("一只猫。") < text.index("再说一遍") < text.index("*(interrupted)*")
