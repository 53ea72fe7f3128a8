"""The messages of a long chat for the browser benchmark: short questions, ~400-character Markdown answers."""
from __future__ import annotations

ANSWER = ("Here is what I found about **item {n}**:\n\n"
          "- It was first described in a short note, then in a longer report with *three* figures.\n"
          "- The second point: numbers matter, so `value = {n} * 2` is what the table shows.\n"
          "- A third point, with a [link](https://example.com/{n}) to the source.\n\n"
          "In short, item {n} behaves as expected; ask me if you want the details of any part.")


def canned_messages(count: int) -> list[dict[str, str]]:
    messages = []
    for n in range(count // 2):
        messages += [{"role": "user", "content": f"Tell me about item {n}?"},
                     {"role": "assistant", "content": ANSWER.format(n=n)}]
    return messages
