"""Answering a conversation: the whole turn pipeline, run by workers the process owns.

history -> context -> request -> stream -> progressive saving -> title. A page starts an answer and
then only attaches to it: a rerun, a reload, a second tab or a closed browser does not stop it; only
`stop` does (it closes the provider connection, so generation stops there too). The store stays the
durable truth; the LiveAnswer is only for drawing fast. No Streamlit here: a future API or a second
UI reuses this module as it is.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace

from .approval import APPROVAL_TIMEOUT_S, Approvals, Decision, PendingCall
from .calls import Turn, estimate_usage, run_turn
from .client import Cancel
from .context import EMBEDDER_NAME, ContextSettings, default_embedder, input_budget, prepare_context
from .context.summaries import write_summary
from .documents import DocumentProblem, Upload, chunk_pages, document_kind, read_pages_isolated
from .errors import ChatError
from .local_queue import LeftQueue, gate_for
from .messages import ChatOptions, Message
from .pricing import Price
from .providers import ModelInfo
from .request import build_request
from .saving import ProgressSaver
from .settings import Connection
from .store import PlaceTaken, StorageError, Store
from .titles import suggest_title
from .tokens import TokenCounter, schema_tokens
from .tool_loop import run_turn_with_tools
from .tools import Toolbox

log = logging.getLogger(__name__)

MAX_ANSWERS_PER_OWNER = 3  # answers one visitor can have being written at once
WORKERS = 16
HEARTBEAT_S = 2.0  # how often a live answer's row says "still being written"
SWEEP_EVERY_BEATS = 5  # how often this process marks answers whose writer (any replica) died as interrupted
# A document this small (~15 pages; ~10 s on two cores) is embedded before its first answer; a bigger one is
# answered at once by its words and embedded in the background after that answer.
EMBED_BEFORE_ANSWER_CHUNKS = 40
EMBED_BATCH = 8
KEEP_S = 600.0  # how long a finished answer's live state is kept (pages that read the store before it ended)


@dataclass(frozen=True)
class TurnSetup:
    """What the visitor chose for this answer."""

    options: ChatOptions
    connection: Connection | None  # None: the provider needs a key nobody gave
    model: ModelInfo
    count: TokenCounter
    context: ContextSettings
    price: Price | None = None
    tools: Toolbox | None = None  # the tools the model may call (built-in and MCP), if any
    documents: tuple[Upload, ...] = ()  # files attached to the question: read and stored before it is answered


class TooManyAnswers(Exception):
    """This visitor already has MAX_ANSWERS_PER_OWNER answers being written."""


class LiveAnswer:
    """The answer being written, as pages draw it: phase, the growing Turn, and a version to wait on."""

    def __init__(self, owner: str, cid: str, local: bool = False, approval_timeout_s: float = APPROVAL_TIMEOUT_S) -> None:
        self.owner, self.cid = owner, cid
        self.local = local  # generated on this machine's cores (the embedded model): the page redraws less often
        # queued, preparing, reading, indexing, summarising, asking, streaming, awaiting_approval, done
        self.phase = "preparing"
        self.queue_position = 0  # while queued: 1 = next in line for the embedded model
        self.progress: tuple[str, int, int] = ("", 0, 0)  # reading or indexing: (document, done, of)
        self.turn: Turn | None = None
        self.cancel = Cancel()
        self.saver: ProgressSaver | None = None
        self.done = threading.Event()
        self.started = time.monotonic()
        self.version = 0
        self._changed = threading.Condition()
        self.approval_timeout_s = approval_timeout_s
        self.approvals = Approvals(self._approval_changed)

    def publish(self, phase: str, turn: Turn | None = None) -> None:
        with self._changed:
            self.phase, self.turn = phase, turn or self.turn
            self.version += 1
            self._changed.notify_all()

    @property
    def pending(self) -> PendingCall | None:
        """The tool call waiting for the visitor's Approve or Deny, if any."""
        return self.approvals.pending

    def ask(self, call: PendingCall) -> Decision:
        """Wait (in the worker) for the visitor's decision on a tool that asks first."""
        return self.approvals.ask(call, self.approval_timeout_s, self.cancel)

    def _approval_changed(self) -> None:
        self.publish("awaiting_approval" if self.approvals.pending is not None else "streaming")

    def advance(self, phase: str, document: str, done: int, total: int) -> None:
        self.progress = (document, done, total)
        self.publish(phase)

    def in_line(self, position: int) -> None:
        """The place in the embedded model's line changed (0: its turn has come)."""
        self.queue_position = position
        self.publish("queued" if position else "preparing")

    def wait_until_asked(self, timeout_s: float) -> None:
        """Until the request goes out, the answer waits for something else (its turn on the embedded
        model, a document) or it has ended."""
        with self._changed:
            self._changed.wait_for(lambda: self.phase != "preparing" or self.done.is_set(), timeout=timeout_s)

    def wait_for_change(self, seen: int, timeout_s: float) -> int:
        """Block until the version passes `seen` (or the timeout); returns the version now."""
        with self._changed:
            self._changed.wait_for(lambda: self.version > seen or self.done.is_set(), timeout=timeout_s)
            return self.version

    @property
    def unsaved(self) -> bool:
        """Finished, but the database has not taken the final state yet (it will, in the background)."""
        return self.done.is_set() and self.saver is not None and not self.saver.saved.is_set()

    @property
    def active(self) -> bool:
        """Still to be drawn from here rather than from the store."""
        return not self.done.is_set() or self.unsaved

    @property
    def message_id(self) -> int | None:
        """The stored answer's id, once it has one."""
        return self.saver.message.id if self.saver and self.saver.message else None


def answer_conversation(store: Store, live: LiveAnswer, setup: TurnSetup, position: int | None,
                        wants_title: bool) -> None:
    """Answer the last question of the conversation, saving the answer as it grows (whole, partial or failed).
    The answer's row is claimed first: if another replica (or tab) is answering this question, nothing is
    asked here and the page shows that answer."""
    owner, cid = live.owner, live.cid
    saver = ProgressSaver(store, owner, cid, setup.options, position, setup.price, setup.count)
    try:
        claimed = saver.claim(Turn(model=setup.options.model, request={}, notes=[]))
    except PlaceTaken:
        return
    live.saver = saver
    thread = store.snapshot(owner, cid).thread  # read-only, as every page draws them: not copied
    history = [item.message for item in thread if claimed is None or item.position < claimed]
    notes = read_documents(store, owner, cid, setup.documents, setup.count, history[-1].id if history else None,
                           lambda name, done, total: live.advance("reading", name, done, total))
    connection = setup.connection
    if connection is None:
        _fail(live, setup, ChatError("no_connection"))
        return
    done, total = store.embedded_count(owner, cid, EMBEDDER_NAME) if setup.documents else (0, 0)
    if 0 < total - done <= EMBED_BEFORE_ANSWER_CHUNKS:
        embed_documents(store, owner, cid, lambda name, done, total: live.advance("indexing", name, done, total),
                        stop=lambda: live.cancel.cancelled)
    if live.cancel.cancelled:
        _fail(live, setup, ChatError("stopped"))
        return
    live.publish("preparing")
    try:
        with _turn_on_the_model(live, connection):
            _answer(store, live, setup, history, wants_title, notes)
    except LeftQueue:  # Stop while waiting: nothing was sent
        _fail(live, setup, ChatError("stopped"))


def read_documents(store: Store, owner: str, cid: str, documents: tuple[Upload, ...], count: TokenCounter,
                   question_id: int | None,
                   on_progress: Callable[[str, int, int], None] = lambda name, done, total: None) -> list[str]:
    """Read, cut and store the documents attached to the question; notes for the answer on any that failed."""
    notes = []
    for upload in documents:
        try:
            pages = read_pages_isolated(upload.name, upload.data,
                               lambda done, total, name=upload.name: on_progress(name, done, total))
        except DocumentProblem:  # checked when attached; a file that fails only now is left out, and said so
            notes.append("note_document_unreadable")
            continue
        try:
            store.add_document(owner, cid, upload.name, question_id, pages[-1].number,
                               sum(count(page.text) for page in pages), chunk_pages(document_kind(upload.name), pages))
        except (StorageError, KeyError):
            notes.append("note_document_unreadable")
    return notes


def embed_documents(store: Store, owner: str, cid: str,
                    on_progress: Callable[[str, int, int], None] = lambda name, done, total: None,
                    stop: Callable[[], bool] = lambda: False) -> bool:
    """Embed the conversation's chunks that have no vector yet, a batch at a time, until none is left
    (True) or `stop` says so. Retrieval works without them (by words); vectors make it understand meaning."""
    while not stop():
        pending = store.pending_chunks(owner, cid, EMBEDDER_NAME, EMBED_BATCH)
        if not pending:
            return True
        on_progress(pending[0].document, *store.embedded_count(owner, cid, EMBEDDER_NAME))
        vectors = default_embedder().passages([chunk.text for chunk in pending])  # loaded only when needed
        store.save_chunk_vectors(owner, cid, EMBEDDER_NAME,
                                 {chunk.id: vector for chunk, vector in zip(pending, vectors)})
    return False


@contextmanager
def _turn_on_the_model(live: LiveAnswer, connection: Connection) -> Iterator[None]:
    """The embedded model answers one visitor at a time, in order: wait in its line (the page shows the
    place), then hold it for the whole answer. A provider's server needs no line here.

    Held for the summary, the answer and the title alike: they are calls to the same model, and a
    call outside the line would not go faster, only make the visitor whose turn it is wait unseen
    (llama-cpp-python's server runs one request at a time). The title is a few tokens, so the next
    in line waits about a second more, and sees why.
    """
    if not connection.provider.embedded:
        yield
        return
    with gate_for(connection.base_url).acquire(on_position=live.in_line, cancelled=lambda: live.cancel.cancelled):
        yield


def _answer(store: Store, live: LiveAnswer, setup: TurnSetup, history: list[Message], wants_title: bool,
            notes: list[str]) -> None:
    owner, cid, saver = live.owner, live.cid, live.saver
    connection, model = setup.connection, setup.model
    toolbox = setup.tools or Toolbox()
    offered = toolbox.schemas() if model.tools else []  # as build_request offers them: sent with every request
    context = prepare_context(store.context_source(owner, cid), history, setup.context, setup.options.system_prompt,
                              input_budget(model), setup.count,
                              lambda thread, due, previous: write_summary(connection, model, thread, due, previous),
                              on_summarising=lambda: live.publish("summarising"),
                              tool_tokens=schema_tokens(offered, setup.count))
    plan = build_request(context.sent, replace(setup.options, system_prompt=context.system_prompt), model,
                         connection.provider, tools=toolbox.schemas() or None, stable_prefix=context.stable_prefix,
                         count=setup.count)
    saver.sent = context.sent
    plan.notes = notes + context.notes + plan.notes
    turns = (run_turn_with_tools(connection, plan, toolbox, count=setup.count, context=context.explain(),
                                 cancel=live.cancel, ask=live.ask, sees_images=model.vision) if "tools" in plan.kwargs
             else run_turn(connection, plan, count=setup.count, context=context.explain(), cancel=live.cancel))
    turn: Turn | None = None
    live.publish("asking")
    for turn in turns:
        live.publish("streaming", turn)  # drawn first, saved after: the first piece's save creates its row
        saver.update(turn)
    answer = saver.finish(turn)
    live.publish("done", turn)
    if wants_title and turn.error is None and history:
        title = suggest_title(connection, model, history[-1], answer)
        if title:
            try:
                store.rename(owner, cid, title)
            except (StorageError, KeyError):  # the chat may be gone by now; the first words stay
                pass


def _fail(live: LiveAnswer, setup: TurnSetup, error: ChatError) -> None:
    """Save a failed answer with the reason (and what had arrived, if anything)."""
    turn = live.turn or Turn(model=setup.options.model, request={}, notes=[])
    turn.error = turn.error or error
    turn.ended_at = turn.ended_at or turn.started
    if turn.content or turn.reasoning:
        turn.usage = turn.usage or estimate_usage(turn, setup.count)
    if live.saver is not None:
        live.saver.finish(turn)
    live.publish("done", turn)


class Answerer:
    """The process's answer workers, keyed by conversation. One per process, shared by every session."""

    def __init__(self, store: Store, approval_timeout_s: float = APPROVAL_TIMEOUT_S) -> None:
        self.store = store
        self.approval_timeout_s = approval_timeout_s  # how long a tool that asks first waits for the visitor
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="atri-answer")
        self._live: dict[str, LiveAnswer] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._indexer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="atri-embed")
        self._embedding: set[tuple[str, str]] = set()
        store.interrupt_stale_answers(at_start=True)  # left "being written" by a process that died
        threading.Thread(target=self._heartbeat, name="atri-heartbeat", daemon=True).start()

    def start(self, owner: str, cid: str, setup: TurnSetup, position: int | None = None,
              wants_title: bool = False) -> LiveAnswer:
        """Start answering the conversation's last question; an answer already being written is returned
        instead (never a second request for the same answer). Raises TooManyAnswers."""
        with self._lock:
            current = self._live.get(cid)
            if current is not None and current.owner == owner and not current.done.is_set():
                return current
            if len(self.answering(owner)) >= MAX_ANSWERS_PER_OWNER:
                raise TooManyAnswers(MAX_ANSWERS_PER_OWNER)
            local = setup.connection is not None and setup.connection.provider.embedded
            live = self._live[cid] = LiveAnswer(owner, cid, local, self.approval_timeout_s)
            for done in [key for key, old in self._live.items() if not old.active and old.started < live.started - KEEP_S]:
                del self._live[done]
        self._pool.submit(self._run, live, setup, position, wants_title)
        return live

    def _run(self, live: LiveAnswer, setup: TurnSetup, position: int | None, wants_title: bool) -> None:
        try:
            answer_conversation(self.store, live, setup, position, wants_title)
        except Exception as error:  # the answer must end with its reason saved, whatever happened
            log.exception("answer failed")
            _fail(live, setup, ChatError("unknown", type(error).__name__))
        finally:
            live.done.set()
            live.publish("done")
        if setup.documents:  # what a big document's first answer left; a page resumes any other (a restart)
            self.embed_later(live.owner, live.cid)

    def embed_later(self, owner: str, cid: str) -> None:
        """Embed the conversation's chunks left without a vector, in the background (after its answer, or
        when a page finds some, e.g. after a restart); one conversation at a time, each asked once."""
        if not self.store.pending_chunks(owner, cid, EMBEDDER_NAME, 1):
            return
        with self._lock:
            if (owner, cid) in self._embedding:
                return
            self._embedding.add((owner, cid))
        self._indexer.submit(self._embed, owner, cid)

    def _embed(self, owner: str, cid: str) -> None:
        try:
            embed_documents(self.store, owner, cid, stop=self._closed.is_set)
        except Exception:  # tried again after the conversation's next answer, or the next page that sees it
            log.exception("embedding documents failed")
        finally:
            with self._lock:
                self._embedding.discard((owner, cid))

    def keep_documents(self, owner: str, cid: str, documents: tuple[Upload, ...], count: TokenCounter) -> None:
        """Store the documents of a question that is not being answered now (too many answers at once),
        so that asking again finds them."""
        def keep() -> None:
            history = self.store.snapshot(owner, cid).messages
            read_documents(self.store, owner, cid, documents, count, history[-1].id if history else None)
            self.embed_later(owner, cid)

        self._indexer.submit(keep)

    def live(self, owner: str, cid: str | None) -> LiveAnswer | None:
        """The latest answer this process wrote or is writing for the conversation (`active`: not in
        the store yet). A page that read the conversation before the answer ended learns it from here."""
        live = self._live.get(cid) if cid else None
        return live if live is not None and live.owner == owner else None

    def answering(self, owner: str) -> set[str]:
        """The conversations of this owner with an answer being written here."""
        return {cid for cid, live in list(self._live.items()) if live.owner == owner and not live.done.is_set()}

    def stop(self, owner: str, cid: str) -> None:
        live = self._live.get(cid)
        if live is not None and live.owner == owner:
            live.cancel.cancel()

    def decide(self, owner: str, cid: str, call_id: str, approve: bool) -> bool:
        """The visitor's Approve or Deny of the tool call waiting in their answer; False (nothing decided) when
        the answer is another owner's or that call is not the one waiting."""
        live = self._live.get(cid)
        return live is not None and live.owner == owner and live.approvals.decide(call_id, approve)

    def close(self) -> None:
        self._closed.set()
        for live in list(self._live.values()):
            live.cancel.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._indexer.shutdown(wait=True, cancel_futures=True)

    def _heartbeat(self) -> None:
        """Every few seconds: this process's answers are still being written; now and then, answers whose
        writer stopped (a replica that died) are marked interrupted, whoever wrote them."""
        beats = 0
        while not self._closed.wait(HEARTBEAT_S):
            beats += 1
            ids = [live.saver.message.id for live in list(self._live.values())
                   if not live.done.is_set() and live.saver and live.saver.message and live.saver.message.id]
            try:
                if ids:
                    self.store.still_writing(ids)
                if beats % SWEEP_EVERY_BEATS == 0:
                    self.store.interrupt_stale_answers()
            except StorageError:
                pass  # the next beat tries again; a reader sees the answer as live until it goes stale
