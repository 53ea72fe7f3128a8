"""The embedded model's waiting line (atri.local_queue): first come, first served, positions told as they change."""
import threading
import time

import pytest

from atri.local_queue import LeftQueue, SlotGate, gate_for

WAIT_S = 5.0


class Visitor:
    """A thread that waits in line, records the positions it was told, holds its slot until released."""

    def __init__(self, gate: SlotGate, name: str, served: list[str], cancelled=None) -> None:
        self.gate, self.name, self.served = gate, name, served
        self.positions: list[int] = []
        self.told = threading.Condition()
        self.release = threading.Event()
        self.left = False
        self.cancelled = cancelled
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            with self.gate.acquire(self._on_position, cancelled=self.cancelled):
                self.served.append(self.name)
                self.release.wait(WAIT_S)
        except LeftQueue:
            self.left = True
            with self.told:
                self.told.notify_all()

    def _on_position(self, position: int) -> None:
        with self.told:
            self.positions.append(position)
            self.told.notify_all()

    def start(self) -> "Visitor":
        self.thread.start()
        return self

    def wait_until_told(self, position: int) -> None:
        with self.told:
            assert self.told.wait_for(lambda: self.positions and self.positions[-1] == position, WAIT_S), \
                f"{self.name} was told {self.positions}, not {position}"

    def finish(self) -> None:
        self.release.set()
        self.thread.join(WAIT_S)
        assert not self.thread.is_alive()


def test_the_first_visitor_goes_straight_in_and_is_told_zero_once():
    gate, seen = SlotGate(), []
    with gate.acquire(seen.append):
        assert seen == [0]
        assert gate.holding == 1 and gate.waiting == 0
    assert gate.holding == 0 and seen == [0]


def test_the_second_visitor_waits_in_first_place_and_gets_in_when_the_first_leaves():
    gate, served = SlotGate(), []
    first = Visitor(gate, "first", served).start()
    first.wait_until_told(0)
    second = Visitor(gate, "second", served).start()
    second.wait_until_told(1)
    assert served == ["first"] and gate.waiting == 1
    first.finish()
    second.wait_until_told(0)
    second.finish()
    assert served == ["first", "second"]
    assert second.positions == [1, 0]


def test_three_waiters_are_served_in_arrival_order_and_each_sees_its_place_move_up():
    gate, served = SlotGate(), []
    holder = Visitor(gate, "holder", served).start()
    holder.wait_until_told(0)
    line = []
    for index, name in enumerate(["a", "b", "c"], start=1):
        visitor = Visitor(gate, name, served).start()
        visitor.wait_until_told(index)  # each arrives after the previous one is in line
        line.append(visitor)
    waiters = list(line)
    holder.finish()
    while line:
        for position, visitor in enumerate(line):
            visitor.wait_until_told(position)  # everyone moved up before the next one leaves
        line.pop(0).finish()
    assert served == ["holder", "a", "b", "c"]
    assert [v.positions for v in waiters] == [[1, 0], [2, 1, 0], [3, 2, 1, 0]]


def test_stop_while_waiting_gives_up_the_place_and_the_ones_behind_move_up():
    gate, served = SlotGate(), []
    holder = Visitor(gate, "holder", served).start()
    holder.wait_until_told(0)
    stop = threading.Event()
    quitter = Visitor(gate, "quitter", served, cancelled=stop.is_set).start()
    quitter.wait_until_told(1)
    patient = Visitor(gate, "patient", served).start()
    patient.wait_until_told(2)
    stop.set()
    quitter.thread.join(WAIT_S)
    assert quitter.left and quitter.positions == [1]
    patient.wait_until_told(1)
    holder.finish()
    patient.wait_until_told(0)
    patient.finish()
    assert served == ["holder", "patient"]


def test_an_error_inside_the_block_frees_the_slot():
    gate = SlotGate()
    with pytest.raises(RuntimeError):
        with gate.acquire():
            raise RuntimeError("the stream broke")
    assert gate.holding == 0
    with gate.acquire():
        assert gate.holding == 1


def test_a_callback_that_fails_does_not_keep_the_place():
    gate = SlotGate()

    def broken(position: int) -> None:
        raise ValueError(position)

    with pytest.raises(ValueError):
        with gate.acquire(broken):
            pass
    assert gate.holding == 0 and gate.waiting == 0


def test_two_slots_let_two_in_and_the_third_waits():
    gate, served = SlotGate(slots=2), []
    a, b = Visitor(gate, "a", served).start(), Visitor(gate, "b", served).start()
    a.wait_until_told(0)
    b.wait_until_told(0)
    c = Visitor(gate, "c", served).start()
    c.wait_until_told(1)
    b.finish()
    c.wait_until_told(0)
    a.finish()
    c.finish()
    assert sorted(served[:2]) == ["a", "b"] and served[2] == "c"


def test_a_newcomer_does_not_jump_the_line_when_a_slot_frees():
    gate, served = SlotGate(), []
    waiter = Visitor(gate, "waiter", served)
    with gate.acquire():
        waiter.start()
        waiter.wait_until_told(1)
    # the slot went to the one in line as the block ended, before anyone else could ask for it
    assert gate.holding == 1 and gate.waiting == 0
    newcomer = Visitor(gate, "newcomer", served).start()
    newcomer.wait_until_told(1)
    waiter.finish()
    newcomer.wait_until_told(0)
    newcomer.finish()
    assert served == ["waiter", "newcomer"]


def test_many_at_once_are_all_served_one_at_a_time():
    gate, inside, most = SlotGate(), [0], [0]
    lock = threading.Lock()

    def visit() -> None:
        with gate.acquire():
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.001)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=visit) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    assert most == [1]
    assert gate.holding == 0 and gate.waiting == 0


def test_one_gate_per_server_shared_by_every_caller():
    assert gate_for("http://127.0.0.1:1/v1") is gate_for("http://127.0.0.1:1/v1")
    assert gate_for("http://127.0.0.1:1/v1") is not gate_for("http://127.0.0.1:2/v1")
    assert gate_for("http://127.0.0.1:1/v1").slots == 1


def test_a_gate_needs_a_slot():
    with pytest.raises(ValueError):
        SlotGate(slots=0)
