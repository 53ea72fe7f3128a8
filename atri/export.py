"""A conversation as readable Markdown (the complete form is the store's JSON export)."""
from __future__ import annotations

from .messages import Message


def to_markdown(title: str, messages: list[Message]) -> str:
    lines = [f"# {title or 'Atri chat'}", ""]
    for message in messages:
        if message.role == "user":
            lines += ["## 🧑 User", ""]
            lines += [f"![image {i + 1}]({url if url.startswith('http') else 'attached image'})"
                      for i, url in enumerate(message.images)]
            lines += [message.content, ""]
        elif message.role == "assistant":
            model = message.facts.model if message.facts else ""
            lines += [f"## 🐱 Atri{f' ({model})' if model else ''}", ""]
            if message.reasoning:
                quoted = "\n".join(f"> {line}" for line in message.reasoning.splitlines())
                lines += ["<details><summary>Reasoning</summary>", "", quoted, "", "</details>", ""]
            for step in (message.facts.tool_steps if message.facts else None) or []:
                outcome = f"Error: {step['error']}" if step["error"] is not None else step["result"]
                lines += [f"<details><summary>Tool {step['name']} ({step['seconds']:.2f} s)</summary>", "",
                          "```json", step["arguments"], "```", "", "```text", outcome, "```", "", "</details>", ""]
            lines += [message.content, ""]
            for source in (message.facts.sources if message.facts else None) or []:
                lines.append(f"{source['index']}. [{source.get('title') or source['url']}]({source['url']})")
            if message.facts and message.facts.sources:
                lines.append("")
            if message.facts and message.facts.interrupted:
                lines += ["*(interrupted)*", ""]
    return "\n".join(lines).rstrip() + "\n"
