"""Saving an answer while it streams: what arrived is never lost to a storage error.

The answer's row is written before its request goes out (the claim: every replica then sees the question
as being answered), every half second while it streams, and when it ends. A write the database refuses (a lock
held by another writer, a lost connection) is simply tried again at the next chance; the final
write is retried for a few seconds and then, if the database is still away, by a background thread
until it answers. Meanwhile the page shows the answer from memory and says it is not saved yet.
"""
from __future__ import annotations

import threading
import time

from tenacity import Retrying, retry_if_result, stop_after_delay, wait_exponential

from .messages import ChatOptions, Message
from .pricing import Price
from .request import compact_request
from .store import STREAMING, PlaceTaken, StorageError, Store
from .tokens import TokenCounter
from .turn import Turn, estimate_usage

SAVE_INTERVAL_S = 0.5  # how often a streaming answer is written to the database
FINAL_RETRY_S = 8.0  # how long the end of an answer waits for a busy database before going to the background
BACKGROUND_RETRY_S = 3600.0


class ProgressSaver:
    """Writes the growing answer of one turn to the store; a crash or a kill loses at most half a second."""

    def __init__(self, store: Store, owner: str, cid: str, options: ChatOptions, position: int | None,
                 price: Price | None = None, count: TokenCounter | None = None) -> None:
        self.store, self.owner, self.cid, self.options, self.position = store, owner, cid, options, position
        self.price = price  # the model's, so the stored answer carries its cost
        self.count = count  # estimates what a growing answer has cost so far: a process that dies leaves it counted
        self.message: Message | None = None  # the latest state of the answer
        self.sent: list[Message] = []  # the thread messages the request carried, stored as references
        self.saved = threading.Event()  # set when the latest state is in the database
        self._saved_at = 0.0
        self._lock = threading.Lock()

    def claim(self, turn: Turn) -> int | None:
        """Write the answer's row before anything is asked (store.claim_answer); returns its position, or
        None when the database is away (the answer goes on and is saved when it answers again). Raises
        PlaceTaken when another replica or tab is answering this question already."""
        message = self._message_of(turn, final=False)
        with self._lock:
            try:
                claimed = self.store.claim_answer(self.owner, self.cid, message, self.position, self.price)
            except StorageError:
                return None
            message.id, self.position = claimed.id, claimed.position
            self.message = message
            self._saved_at = time.monotonic()
            self.saved.set()
            return self.position

    def _message_of(self, turn: Turn, final: bool) -> Message:
        message = turn.to_message(self.options)
        if not final and message.facts and message.facts.error_kind == "interrupted":
            message.facts.error_kind = STREAMING  # not ended yet: other pages and replicas see it live
            if message.facts.usage is None and self.count is not None and (turn.content or turn.reasoning):
                message.facts.usage = estimate_usage(turn, self.count)
        return message

    def update(self, turn: Turn, final: bool = False) -> Message:
        message = self._message_of(turn, final)
        with self._lock:
            message.id = self.message.id if self.message else None
            self.message = message
            self.saved.clear()
        if final or message.id is None or time.monotonic() - self._saved_at >= SAVE_INTERVAL_S:
            if message.facts and message.facts.request:  # only for a state that is written: it walks the history
                message.facts.request = compact_request(message.facts.request, self.sent)
            self._write()
        return message

    def finish(self, turn: Turn) -> Message:
        """The final write: retried for a while, then handed to a background thread if still refused."""
        message = self.update(turn, final=True)
        if not self.saved.is_set() and not self._retry(FINAL_RETRY_S):
            threading.Thread(target=self._retry, args=(BACKGROUND_RETRY_S,), name="atri-save", daemon=True).start()
        return message

    def _retry(self, seconds: float) -> bool:
        retrying = Retrying(stop=stop_after_delay(seconds), wait=wait_exponential(multiplier=0.2, max=3),
                            retry=retry_if_result(lambda saved: not saved), retry_error_callback=lambda _: False)
        return retrying(self._write)

    def _write(self) -> bool:
        with self._lock:  # one write at a time, of the newest state
            message = self.message
            try:
                if message.id is None:
                    message.id = self.store.append(self.owner, self.cid, message, position=self.position, price=self.price)
                else:
                    self.store.save(self.owner, message, price=self.price)
            except StorageError:
                return False
            except PlaceTaken:  # not claimed (the database was away then), and the place is gone: at the end
                self.position = None
                return False
            self._saved_at = time.monotonic()
            if message is self.message:
                self.saved.set()
            return True
