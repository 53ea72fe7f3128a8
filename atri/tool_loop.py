"""One answer that may call tools: request -> tool calls -> run them -> `role: "tool"` results -> again.

The model streams its calls (atri.stream gathers their pieces); each call is run by the answer's Toolbox
and its result goes back as a `tool` message in the next request, until the model answers without
calling anything, or the step limit is reached: then one last request with `tool_choice: "none"` asks for
the answer from what it has. Each request is one atri.calls.follow_request (admitted, sent and charged
there), and all of them feed one growing Turn: its content and reasoning run on from
round to round, its usage adds up, and every call is kept in `turn.tool_steps` (stored with the answer).
A search tool's hits join `turn.sources`, the list shown under the answer, as a provider's own search results do.
A provider that refuses tools with a 400 before anything arrives is asked again without them, with a note.

A tool that asks first (atri.approval) runs only once `ask` says the visitor approved it; a call denied, or left
unanswered, is not run and the model reads why as its result. Without `ask` (nobody to ask) such a call is denied.

Images a tool returned (atri.tool_images) are kept in its step; a model that can see (`sees_images`) gets them
on the next round in one `role: "user"` message after the round's tool results; one that cannot reads only
their names in the results' text.

A round runs at most MAX_CALLS_PER_ROUND calls (the rest are answered with an error text the model reads),
and Stop ends the answer at once, even while a tool is running: the tool's thread is left to end by itself.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from .approval import Ask, Decision, PendingCall, declined_step
from .calls import follow_request
from .client import Cancel
from .errors import ChatError
from .request import RequestPlan
from .settings import Connection
from .stream import SearchResults
from .tokens import TokenCounter
from .tool_images import ReturnedImages, images_message
from .tools import Toolbox, ToolCall, ToolStep, result_for_model
from .turn import Turn, TurnFollower

MAX_STEPS = 5  # requests that may call tools; one more (without tools) answers after the last
MAX_CALLS_PER_ROUND = 8  # calls run from one request; a model asking for more gets an error text for the rest


def _without_tools(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in kwargs.items() if key not in ("tools", "parallel_tool_calls", "tool_choice")}


def _assistant_step(turn: Turn, content: str, reasoning: str) -> dict[str, Any]:
    """The model's own message that asked for the calls, as the next request must carry it."""
    # "" rather than null: llama.cpp's server answers 500 to a null content (issue 32); every other accepts ""
    message: dict[str, Any] = {"role": "assistant", "content": content,
                               "tool_calls": [call.as_sent() for call in turn.calls]}
    if reasoning:  # DeepSeek wants it back after a tool call; DashScope ignores it
        message["reasoning_content"] = reasoning
    return message


def _too_many(call: ToolCall) -> str:
    return (f"Error: not run: at most {MAX_CALLS_PER_ROUND} tool calls are run per request; "
            f"ask for {call.name} again in the next one if it is still needed")


def _run_unless_stopped(toolbox: Toolbox, call: ToolCall, round_: int, cited: list[dict[str, Any]],
                        cancel: Cancel | None) -> ToolStep | None:
    """The call's step, or None when Stop came first (the tool's thread then ends by itself, unwaited)."""
    if cancel is None:
        return toolbox.run(call, round_, cited)
    if cancel.cancelled:
        return None
    steps: list[ToolStep] = []
    ended = threading.Event()

    def work() -> None:
        try:
            steps.append(toolbox.run(call, round_, list(cited)))
        finally:
            ended.set()

    cancel.on_cancel(ended.set)
    threading.Thread(target=work, name="atri-tool", daemon=True).start()
    ended.wait()
    if cancel.cancelled:
        return None
    return steps[0] if steps else ToolStep(call.id, call.name, call.arguments[:2000], error="the tool ended abruptly",
                                           round=round_)


def _images_for_model(steps: list[ToolStep]) -> dict[str, Any] | None:
    """The round's images a model may see, in one user message (tool messages cannot carry images)."""
    return images_message(ReturnedImages(step.name, step.id, tuple(image.url for image in step.images if image.for_model))
                          for step in steps)


def _decision(toolbox: Toolbox, call: ToolCall, ask: Ask | None) -> Decision:
    """Whether the call may run: always for a tool that does not ask first."""
    tool = toolbox.find(call.name)
    if tool is None or not tool.asks_first:
        return "approved"
    return ask(PendingCall(call.id, call.name, tool.source, call.arguments)) if ask is not None else "denied"


def _step(toolbox: Toolbox, call: ToolCall, round_: int, cited: list[dict[str, Any]], cancel: Cancel | None,
          ask: Ask | None) -> ToolStep | None:
    """The call's step (run, or declined), or None when Stop came first."""
    decision = _decision(toolbox, call, ask)
    if decision == "stopped":
        return None
    if decision != "approved":
        return declined_step(call, decision, round_)
    return _run_unless_stopped(toolbox, call, round_, cited, cancel)


def run_turn_with_tools(conn: Connection, plan: RequestPlan, toolbox: Toolbox, *, count: TokenCounter | None = None,
                        context: dict[str, Any] | None = None, cancel: Cancel | None = None,
                        max_steps: int = MAX_STEPS, ask: Ask | None = None, sees_images: bool = False,
                        ) -> Iterator[Turn]:
    """Yields the growing Turn after each chunk and each tool run, and once more when it has ended.
    `sees_images`: the model reads image parts (the images tools return are sent to it)."""
    follower = TurnFollower(conn, plan, count, context)
    turn = follower.turn
    kwargs = dict(plan.kwargs)
    messages = list(kwargs["messages"])
    error: ChatError | None = None
    round_, refused_once = 0, False
    while True:
        if round_ == max_steps and "tools" in kwargs:  # the limit: answer from what the tools gave
            kwargs["tool_choice"] = "none"
            turn.notes.append("note_tool_step_limit")
        content_mark, reasoning_mark = len(turn.content), len(turn.reasoning)
        received = False
        try:
            for _ in follow_request(conn, follower, {**kwargs, "messages": list(messages)}, cancel=cancel):
                received = True
                yield turn
        except ChatError as failure:
            if round_ == 0 and not received and not refused_once and "tools" in kwargs and failure.kind == "bad_request":
                refused_once = True  # a model or server that cannot call tools: the question still gets its answer
                kwargs = _without_tools(kwargs)
                turn.notes.append("note_tools_refused")
                continue
            error = failure
        if error is not None or not turn.calls or round_ >= max_steps or "tools" not in kwargs:
            break
        messages.append(_assistant_step(turn, turn.content[content_mark:], turn.reasoning[reasoning_mark:]))
        steps_before = len(turn.tool_steps)
        for call in turn.calls[:MAX_CALLS_PER_ROUND]:
            turn.calling = call.name
            yield turn
            step = _step(toolbox, call, round_, turn.sources, cancel, ask)
            if step is None:
                error = ChatError("stopped")
                break
            turn.tool_steps.append(step)
            turn.apply(SearchResults(tuple(step.sources)))
            turn.calling = None
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result_for_model(step)})
            yield turn
        if error is not None:
            break
        messages += [{"role": "tool", "tool_call_id": call.id, "content": _too_many(call)}
                     for call in turn.calls[MAX_CALLS_PER_ROUND:]]
        pictures = _images_for_model(turn.tool_steps[steps_before:]) if sees_images else None
        if pictures:  # after every tool message: a user message between them would break the call's answers
            messages.append(pictures)
        follower.next_round()
        for text_field in ("content", "reasoning"):  # the next round's text starts a paragraph of its own
            if getattr(turn, text_field).strip():
                setattr(turn, text_field, getattr(turn, text_field).rstrip() + "\n\n")
        round_ += 1
    turn.calling, turn.calls = None, []
    turn.content, turn.reasoning = turn.content.rstrip("\n"), turn.reasoning.rstrip("\n")
    yield follower.finish(error)
