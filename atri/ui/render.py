"""How each part of a conversation is shown: one place for messages, live turns and their facts."""
from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import streamlit as st

from atri.documents import cite
from atri.i18n import t
from atri.images import BadImage, check_image_reference, decode_data_url, is_web_url, shorten_data_urls, thumbnail_of
from atri.messages import AnswerFacts, Message, Usage
from atri.pricing import Totals, answer_cost, answer_saving, format_cost
from atri.request import expand_request, sent_count
from atri.safe_markdown import clip_long_strings, defuse_images, for_streamlit, markdown_link, plain_text
from atri.turn import Turn, response_record
from atri.ui.config import price_for
from atri.ui.error_text import error_text
from atri.ui.read_aloud import can_read_aloud, read_aloud_button, read_aloud_player
from atri.ui.redraw import REDRAW_INTERVAL_S, Throttle
from atri.ui.session import session
from atri.ui.steps import show_search_step, show_sources, show_tool_steps
from atri.ui.toolbar import copy_button, details_popover, icon_only, show_details_always, toolbar
from atri.websearch import link_citations

EAGER_MAX_MESSAGES = 12  # recent answers show their context and raw views at once up to this many messages
EAGER_MAX_CHARS = 20_000


FOLD_CHARS = 20_000  # longer texts show their start; the whole text on demand


@st.cache_data(max_entries=256, show_spinner=False)
def _thumbnail_of(url: str) -> bytes | None:
    """For images stored before thumbnails were: made once per process, within the pixel limit."""
    try:
        return decode_data_url(thumbnail_of(url))
    except BadImage:
        return None


def _picture(url: str, thumbnail: str) -> bytes | None:
    """What to show for an uploaded image: its stored thumbnail, or one made now when that is missing or
    damaged (st.image raises on bytes that are not an image)."""
    if thumbnail:
        try:
            picture = decode_data_url(check_image_reference(thumbnail))
        except BadImage:
            picture = None
        if picture:
            return picture
    return _thumbnail_of(url)


def show_images(lang: str, message: Message) -> None:
    """Uploaded images as their small thumbnails; web images as links until asked for, so that opening
    a conversation makes no request anywhere. Never a plain string: st.image would read it as a path."""
    pictures: list[bytes] = []
    web: list[str] = []
    for index, url in enumerate(message.images):
        thumbnail = message.thumbnails[index] if index < len(message.thumbnails) else ""
        if is_web_url(url):
            web.append(url)
            continue
        picture = _picture(url, thumbnail)
        if picture:
            pictures.append(picture)
        else:
            st.caption(f":material/broken_image: {t(lang, 'image_unshown')}")
    if pictures:
        st.image(pictures, width=160)
    if message.video and is_web_url(message.video[0]):
        st.markdown(markdown_link(f":material/movie: {plain_text(urlsplit(message.video[0]).netloc)}", message.video[0]))
    elif message.video:
        frames = [picture for picture in map(_thumbnail_of, message.video) if picture]
        st.caption(f":material/movie: {t(lang, 'video_frames', count=len(message.video))}")
        st.image(frames, width=72)
    if not web:
        return
    key = f"load_images::{message.id}"
    if key in session.opened:
        st.image(web, width=160)
        return
    st.markdown(" · ".join(markdown_link(f":material/image: {plain_text(urlsplit(url).netloc)}", url) for url in web))
    st.button(t(lang, "load_images"), key=f"{key}::button", icon=":material/image:",
              on_click=session.open_part, args=(key,))


def show_text(lang: str, text: str, key: str) -> None:
    """Markdown with no image that loads by itself; a very long text shows its start, the rest on demand."""
    if len(text) <= FOLD_CHARS:
        st.markdown(for_streamlit(text))
        return
    if f"unfold::{key}" in session.opened:
        st.code(text, language="text", wrap_lines=True)  # plain: a whole long paste stays fast to draw
        return
    st.markdown(for_streamlit(text[:FOLD_CHARS] + " …"))
    st.button(t(lang, "show_whole", chars=len(text)), key=f"unfold_button::{key}", icon=":material/unfold_more:",
              on_click=session.open_part, args=(f"unfold::{key}",))


def thinking_label(lang: str, seconds: float | None, reasoning_tokens: int | None, budget: int | None) -> str:
    parts = [t(lang, "thought_for", seconds=seconds or 0.0)]
    if reasoning_tokens:
        tokens = t(lang, "reasoning_tokens_label", tokens=reasoning_tokens)
        parts.append(f"{tokens} / {t(lang, 'budget_label', budget=budget)}" if budget else tokens)
    return " · ".join(parts)


def facts_line(lang: str, facts: AnswerFacts, thought: bool = False) -> str:
    parts = [plain_text(facts.model)]
    if facts.ttft_s is not None:
        parts.append(t(lang, "facts_ttft", seconds=facts.ttft_s))
    if facts.total_s is not None:
        parts.append(t(lang, "facts_total", seconds=facts.total_s))
    if facts.web_searches:
        parts.append(t(lang, "facts_searches", count=facts.web_searches))
    if facts.usage:
        price = price_for(facts.model)
        cost, currency = answer_cost(facts, thought, price)
        parts.append(usage_line(lang, facts.usage, {currency: cost} if cost is not None and currency else {}))
        parts += cache_facts(lang, facts.usage, answer_saving(facts, thought, price), currency)
    return " · ".join(parts)


def cache_facts(lang: str, usage: Usage, saved: float | None, currency: str | None) -> list[str]:
    """What the provider's explicit cache did for one answer: tokens written and hit, and what that took off its
    cost, or, on the turn that wrote it, what writing cost more (the hits after it pay that back)."""
    parts = []
    if usage.cache_written_tokens or usage.cache_explicit:
        parts.append(t(lang, "facts_cache_tokens", written=usage.cache_written_tokens, hit=usage.cached_tokens))
    if saved and currency:
        key, field = ("facts_cache_saved_amount", "saved") if saved > 0 else ("facts_cache_cost_more", "cost")
        parts.append(t(lang, key, **{field: format_cost(abs(saved), currency)}))
    return parts


def cache_totals(lang: str, saved: dict[str, float]) -> str:
    """What the cache did for a whole chat, each currency on its own (a net cost while no hit has paid a write back)."""
    said = []
    for currency, amount in saved.items():
        if amount:
            key, field = ("chat_totals_saved", "saved") if amount > 0 else ("chat_totals_cache_cost_more", "cost")
            said.append(t(lang, key, **{field: format_cost(abs(amount), currency)}))
    return " · ".join(said)


def usage_line(lang: str, usage: Usage | Totals, costs: dict[str, float]) -> str:
    """Tokens in / out / reasoning / cached and what they cost, for one answer or many (every page says it
    the same way). Free (the local model) says nothing about cost."""
    mark = "≈" if usage.estimated else ""
    line = t(lang, "facts_tokens", prompt=f"{mark}{usage.prompt_tokens:,}", completion=f"{mark}{usage.completion_tokens:,}",
             reasoning=f"{mark}{usage.reasoning_tokens:,}", cached=f"{usage.cached_tokens:,}")
    spent = " + ".join(format_cost(amount, currency) for currency, amount in costs.items() if amount)
    return line + (f" · {t(lang, 'cost', cost=spent)}" if spent else "")


def show_answer_body(lang: str, message: Message) -> None:
    """The answer itself: JSON when JSON mode asked for it and it parses, Markdown otherwise."""
    json_mode = bool(message.options and message.options.json_mode)
    if json_mode and message.content and not (message.facts and message.facts.interrupted):
        try:
            st.json(json.loads(message.content))
            return
        except json.JSONDecodeError as error:
            st.code(message.content, language="text")
            st.warning(t(lang, "json_invalid", error=str(error)))
            return
    if message.content:
        sources = message.facts.sources if message.facts else None
        show_text(lang, link_citations(message.content, sources), f"content::{message.id}")


def show_verbatim(lang: str, text: str, key: str) -> None:
    """What the visitor typed, as typed: no Markdown, whitespace kept (`__init__ a*b*c` stays just that).
    A very long text shows its start, the rest on demand, as `show_text` does."""
    if len(text) <= FOLD_CHARS:
        st.text(text)
        return
    if f"unfold::{key}" in session.opened:
        st.code(text, language="text", wrap_lines=True)
        return
    st.text(text[:FOLD_CHARS] + " …")
    st.button(t(lang, "show_whole", chars=len(text)), key=f"unfold_button::{key}", icon=":material/unfold_more:",
              on_click=session.open_part, args=(f"unfold::{key}",))


def _preview(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return plain_text(flat if len(flat) <= limit else flat[:limit] + "…")


def _details(lang: str, label: str, key: str, eager: bool, body: Callable[[], None]) -> None:
    """An expander whose content reaches the browser for recent answers, or once asked for.

    Each answer's raw request holds the whole history before it: sent for every answer, a long
    chat's page would grow with the square of its length.
    """
    with st.expander(label):
        if eager or f"open::{key}" in session.opened:
            body()
        else:
            st.button(t(lang, "show_details"), key=f"open_button::{key}",
                      on_click=session.open_part, args=(f"open::{key}",))


def show_context(lang: str, facts: AnswerFacts, request: Callable[[], dict[str, Any]], key: str, eager: bool) -> None:
    """What the context strategy sent with this answer, what it left out, and why."""
    context = facts.context or {}
    label = t(lang, "context_view", sent=sent_count(facts.request), dropped=len(context.get("dropped", [])),
              tokens=context.get("input_tokens", 0), budget=context.get("budget", 0))
    _details(lang, f"{label} · {t(lang, 'strategy_' + context.get('strategy', 'full'))}", f"context::{key}", eager,
             lambda: _context_body(lang, context, request().get("messages", [])))


def _context_body(lang: str, context: dict[str, Any], sent: list[dict[str, Any]]) -> None:
    st.progress(min(1.0, context.get("input_tokens", 0) / max(1, context.get("budget", 1))))
    if context.get("summary"):
        st.caption(t(lang, "context_summary", through=context.get("summary_through", 0)))
        st.markdown(defuse_images(context["summary"]))
    if context.get("recalled"):
        st.caption(t(lang, "context_recalled"))
        for item in context["recalled"]:
            st.markdown(f"`{t(lang, 'score')} {item['score']:.3f}` {_preview(item['text'])}")
    if context.get("documents"):
        whole = context.get("documents_whole", False)
        st.caption(t(lang, "context_documents_whole" if whole else "context_documents"))
        for item in context["documents"]:
            score = "" if whole else f"{_excerpt_score(lang, item)} "
            st.markdown(f"**{plain_text(cite(item['document'], item['page'], item.get('label')))}** {score}"
                        f"{_preview(item['text'])}")
    st.caption(t(lang, "context_sent"))
    for message in sent:
        st.markdown(f"**{plain_text(message['role'])}** · {_preview(str(message['content']))}")
    if context.get("dropped"):
        st.caption(f"{t(lang, 'context_dropped')}: {len(context['dropped'])}")


def _excerpt_score(lang: str, item: dict[str, Any]) -> str:
    """The fused rank score, and the cosine similarity once the excerpt is embedded."""
    if item.get("similarity") is None:
        return f"`{t(lang, 'rank_score')} {item['score']:.4f}` _{t(lang, 'not_embedded_yet')}_"
    return f"`{t(lang, 'rank_score')} {item['score']:.4f} · {t(lang, 'similarity')} {item['similarity']:.3f}`"


def show_raw(lang: str, message: Message, request: Callable[[], dict[str, Any]], key: str, eager: bool) -> None:
    def body() -> None:
        st.caption(t(lang, "raw_request"))
        st.code(json.dumps(clip_long_strings(shorten_data_urls(request())), indent=4, ensure_ascii=False), language="json",
                wrap_lines=True)
        st.caption(t(lang, "raw_response"))
        st.code(json.dumps(clip_long_strings(response_record(message)), indent=4, ensure_ascii=False), language="json",
                wrap_lines=True)

    _details(lang, t(lang, "raw_view"), f"raw::{key}", eager, body)


def show_assistant(lang: str, message: Message) -> None:
    """The answer as a reader wants it: its reasoning folded, tool steps, the text, sources, and what went
    wrong. Its facts, context and raw views are `answer_details`."""
    facts = message.facts
    if message.reasoning:
        budget = message.options.thinking_budget if message.options else None
        reasoning_tokens = facts.usage.reasoning_tokens if facts and facts.usage else None
        with st.expander(thinking_label(lang, facts.thinking_s if facts else None, reasoning_tokens, budget)):
            show_text(lang, message.reasoning, f"reasoning::{message.id}")
    if facts and facts.tool_steps:
        show_tool_steps(lang, facts.tool_steps)
    show_answer_body(lang, message)
    if facts is None:
        return
    if facts.web_searches is not None:
        show_search_step(lang, facts.web_searches, len(facts.sources or []))
    if facts.sources:
        show_sources(lang, facts.sources)
    for note in facts.notes:
        st.caption(f":material/info: {t(lang, note)}")
    if facts.error_kind == "stopped":
        st.caption(f":material/stop_circle: {t(lang, 'stopped_marker')}")
    elif facts.error_kind:
        if message.content:
            st.caption(t(lang, "interrupted_marker"))
        st.error(error_text(lang, facts.error_kind, facts.error_detail), icon=":material/error:")
    elif facts.finish_reason in ("length", "content_filter"):
        st.warning(t(lang, f"finish_{facts.finish_reason}"), icon=":material/content_cut:")


def answer_details(lang: str, message: Message, by_id: dict[int, Message], recent: bool = True) -> None:
    """The facts line (model, speed, tokens, cost), what the context strategy sent, and the raw request and
    response."""
    facts = message.facts
    if facts is None:
        return
    st.caption(facts_line(lang, facts, bool(message.reasoning))
               + (f" · {t(lang, 'facts_estimated')}" if facts.usage and facts.usage.estimated else ""))
    key = str(message.id)
    # Rebuilt only when drawn: each stored request refers to the whole history before it.
    request = cache(lambda: expand_request(facts.request, by_id) or {})
    eager = recent and sent_count(facts.request) <= EAGER_MAX_MESSAGES and _small(request())
    if facts.context:
        show_context(lang, facts, request, key, eager=eager)
    show_raw(lang, message, request, key, eager=eager)


def _small(request: dict[str, Any]) -> bool:
    """Cheap enough to send to the browser before it is asked for: a request carries the whole history."""
    return sum(len(str(m.get("content", ""))) for m in request.get("messages", [])) <= EAGER_MAX_CHARS


def show_message(lang: str, message: Message, by_id: dict[int, Message], recent: bool = True,
                 attached: list[str] | None = None, actions: Callable[[], None] | None = None,
                 last: bool = False) -> None:
    """`by_id`: the conversation's messages, which stored requests refer to. `recent`: the answer's
    details (context, raw request) are sent at once, not on demand. `attached`: the documents that
    came with a question, as labels. `actions`: draws the message's own buttons in its toolbar. `last`:
    the conversation's last message, whose toolbar shows without hovering."""
    with st.chat_message(message.role):
        if message.role == "user":
            for label in attached or []:
                st.caption(f":material/description: {label}")
            show_images(lang, message)
            show_verbatim(lang, message.content, f"content::{message.id}")
        else:
            show_assistant(lang, message)
        folded = message.facts is not None and not show_details_always()
        if message.facts is not None and not folded:
            answer_details(lang, message, by_id, recent)
        _message_toolbar(lang, message, by_id, recent, actions, last, folded)
        read_aloud_player(lang, message)


def _message_toolbar(lang: str, message: Message, by_id: dict[int, Message], recent: bool,
                     actions: Callable[[], None] | None, last: bool, details: bool) -> None:
    """Copy, the message's actions, and its folded details, in one row under it."""
    copyable = bool(message.content) and len(message.content) <= FOLD_CHARS  # longer: copied once unfolded
    if not (copyable or actions or details):
        return
    key = str(message.id)
    with toolbar(key, last):
        if copyable:
            copy_button(message.content, t(lang, "copy"))
        if can_read_aloud(message):
            read_aloud_button(lang, message)
        if actions:
            actions()
        if details:
            with icon_only(f"details_{key}"):
                details_popover(t(lang, "details"), key, lambda: answer_details(lang, message, by_id, recent))


class LiveAnswer:
    """Draws a turn while it streams: reasoning in a status box above, answer below."""

    def __init__(self, lang: str, redraw_s: float = REDRAW_INTERVAL_S) -> None:
        self.lang = lang
        self._queue_slot = st.empty()
        self._queue_position = 0
        self._thinking_slot = st.empty()
        self._steps_slot = st.empty()
        self._steps_shown: tuple[int, str | None, int, int | None, bool] = (0, None, 0, None, False)
        self._answer_slot = st.empty()
        self._status = None
        self._reasoning_box = None
        self._throttle = Throttle(redraw_s)
        self._collapsed = False

    def queued(self, position: int) -> None:
        """Where this answer stands in the embedded model's line (0: not waiting); drawn when it changes."""
        if position == self._queue_position:
            return
        self._queue_position = position
        if position:
            self._queue_slot.caption(f":material/hourglass_top: {t(self.lang, 'local_queue_position', position=position)}")
        else:
            self._queue_slot.empty()

    def next_draw_in(self) -> float:
        return self._throttle.wait_s()

    def draw(self, turn: Turn, final: bool = False) -> bool:
        """Draws the turn unless the last draw was too recent (False: a piece is left to draw)."""
        if not (turn.reasoning or turn.content or turn.tool_steps or turn.calling or turn.sources):
            return True  # nothing to show yet: the first piece must not wait for a redraw interval
        if not self._throttle.due(final):
            return False
        if turn.reasoning:
            if self._status is None:
                self._status = self._thinking_slot.status(t(self.lang, "thinking_live"), expanded=True)
                self._reasoning_box = self._status.empty()
            self._reasoning_box.markdown(for_streamlit(turn.reasoning))
            if not turn.thinking_now and not self._collapsed:
                self._status.update(label=thinking_label(self.lang, turn.thinking_seconds(), None, None),
                                    state="complete", expanded=False)
                self._collapsed = True
        self._draw_steps(turn)
        if turn.content:
            text = link_citations(turn.content, turn.sources) + ("" if final else " ▌")
            self._answer_slot.markdown(for_streamlit(text))
        return True

    def _draw_steps(self, turn: Turn) -> None:
        """The tool calls run so far, and the one being asked for or run now; redrawn only when they change."""
        searching = _asked_search(turn) and not turn.content and turn.ended_at is None
        shown = (len(turn.tool_steps), turn.calling, len(turn.sources), turn.web_searches, searching)
        if shown == self._steps_shown:
            return
        self._steps_shown = shown
        with self._steps_slot.container():
            show_search_step(self.lang, turn.web_searches, len(turn.sources), running=searching)
            show_tool_steps(self.lang, [step.to_dict() for step in turn.tool_steps])
            if turn.calling:
                st.caption(f":material/build: {t(self.lang, 'tool_running', name=plain_text(turn.calling))}")


def _asked_search(turn: Turn) -> bool:
    """Whether the turn's request asked its provider to search the web."""
    return bool((turn.request.get("extra_body") or {}).get("enable_search"))
