"""Work whose size a visitor controls (issue 27, rows 1-4 and 12): bounded before it starts, and run in a
worker process with limits, so that one visitor's input never holds the server's Python for others."""
import io
import json
import os
import re
import threading
import time
import zipfile

import pytest
from openpyxl import Workbook

from atri.isolation import Limits, Pool, WorkTooHeavy
from atri.schemas import ExtractInputError, parse_schema, read_answer
from atri.tables import MAX_CELLS, MAX_COLUMNS, BatchInputError, read_table, read_table_isolated
from atri.tools import CALCULATOR, Toolbox, ToolCall, builtin_tools, calculate

# --- what the workers run in these tests (module-level: a worker imports them by name) ---


def spin_forever() -> None:
    while True:
        pass


def sleep_for(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


def hold_memory(megabytes: int) -> int:
    return len(bytearray(megabytes * 1024 * 1024))


def environment_names() -> list[str]:
    return sorted(os.environ)


def add(a: int, b: int) -> int:
    return a + b


def refuse() -> None:
    raise BatchInputError("batch_too_many_rows", limit=7)


@pytest.fixture
def pool():
    workers = Pool(workers=1, limits=Limits(cpu_s=1, wall_s=20, memory_bytes=512 * 1024 * 1024))
    yield workers
    workers.close()


class Ticker:
    """How long the server's own Python stops between two ticks of a thread, while something runs."""

    def __init__(self) -> None:
        self.longest_gap = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True)

    def _tick(self) -> None:
        last = time.perf_counter()
        while not self._stop.wait(0.01):
            now = time.perf_counter()
            self.longest_gap, last = max(self.longest_gap, now - last), now

    def __enter__(self) -> "Ticker":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --- the workers ---


def test_a_job_that_never_ends_costs_one_worker_and_the_next_job_runs(pool):
    with Ticker() as ticker, pytest.raises(WorkTooHeavy) as refused:
        pool.run(spin_forever)
    assert refused.value.limit == "time"
    assert ticker.longest_gap < 0.5  # the server's threads went on meanwhile
    assert pool.run(add, 2, 3) == 5


def test_the_wall_clock_deadline_ends_a_job_that_waits(pool):
    started = time.monotonic()
    with pytest.raises(WorkTooHeavy):
        pool.run(sleep_for, 60, limits=Limits(cpu_s=5, wall_s=1))
    assert time.monotonic() - started < 3
    assert pool.run(sleep_for, 0) == "slept"


def test_a_job_that_takes_too_much_memory_is_stopped(pool):
    with pytest.raises(WorkTooHeavy) as refused:
        pool.run(hold_memory, 2048)
    assert refused.value.limit == "memory"
    assert pool.run(hold_memory, 10) == 10 * 1024 * 1024


def test_a_jobs_own_refusal_comes_back_whole(pool):
    with pytest.raises(BatchInputError) as refused:
        pool.run(refuse)
    assert refused.value.key == "batch_too_many_rows" and refused.value.values == {"limit": 7}


def test_workers_hold_no_provider_key(pool, monkeypatch):
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-secret")
    pool.close()
    assert "DASHSCOPE_API_KEY" not in pool.run(environment_names)


# --- row 1: the calculator ---


@pytest.mark.parametrize("bomb", ["3999999**3999999", "999999**999999", "(10**4000)*(10**4000)*(10**4000)*(10**4000)",
                                  "1 << 10**8", "2**15000 * 2**15000"])
def test_a_huge_integer_is_refused_before_it_is_computed(bomb):
    started = time.perf_counter()
    with pytest.raises(Exception, match="digits") as refused:
        calculate(bomb)
    assert type(refused.value).__name__ == "ToolError"
    assert time.perf_counter() - started < 0.5


def test_big_but_reasonable_integers_still_work():
    assert calculate("2**1000") == str(2**1000)
    assert calculate("factorial(100)")[:5] == "93326"
    assert calculate("12345678901234567890 * 98765432109876543210") == str(12345678901234567890 * 98765432109876543210)


def test_the_calculator_tool_answers_from_a_worker_and_the_bomb_is_an_error_the_model_reads():
    toolbox = Toolbox(builtin_tools([CALCULATOR]))
    with Ticker() as ticker:
        bomb = toolbox.run(ToolCall("1", CALCULATOR, json.dumps({"expression": "3999999**3999999"})))
    assert bomb.error and "digits" in bomb.error and ticker.longest_gap < 0.5
    assert toolbox.run(ToolCall("2", CALCULATOR, json.dumps({"expression": "6*7"}))).result == "42"


# --- rows 2 and 3: tables ---


def workbook_bytes(rows: list[list[object]]) -> bytes:
    book = Workbook()
    for row in rows:
        book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def sheet_rewritten(data: bytes, change) -> bytes:
    """The same workbook, its sheet's XML changed by hand (as an attacker would)."""
    source, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            content = source.read(item.filename)
            target.writestr(item, change(content) if item.filename == "xl/worksheets/sheet1.xml" else content)
    return out.getvalue()


def _declaring(data: bytes, dimension: str) -> bytes:
    return sheet_rewritten(data, lambda xml: re.sub(rb'<dimension ref="[^"]*"/>', f'<dimension ref="{dimension}"/>'.encode(), xml))


def test_a_workbook_declaring_a_huge_sheet_is_read_as_what_it_holds():
    bomb = _declaring(workbook_bytes([["prompt"], ["hello"], ["world"]]), "A1:XFD20000")
    assert len(bomb) < 10_000
    started = time.perf_counter()
    table = read_table("bomb.xlsx", bomb)
    assert time.perf_counter() - started < 2
    assert table.columns == ["prompt"] and [row["prompt"] for row in table.rows] == ["hello", "world"]


def test_a_workbook_whose_rows_reach_the_last_column_is_refused_quickly():
    rows: list[list[object]] = [["prompt"]] + [[f"q{i}", "x"] for i in range(200)]
    book = sheet_rewritten(workbook_bytes(rows), lambda xml: re.sub(rb'r="B(\d+)"', rb'r="XFD\1"', xml))  # B → the last column
    started = time.perf_counter()
    with pytest.raises(BatchInputError) as refused:
        read_table("wide.xlsx", book)
    assert refused.value.key == "batch_too_many_cells" and refused.value.values == {"limit": MAX_CELLS}
    assert time.perf_counter() - started < 10


def test_a_csv_with_thousands_of_columns_is_refused_at_its_header():
    bomb = (",".join(f"c{i}" for i in range(5_000)) + "\nx" * 2_000).encode()  # each short row padded to 5,000
    assert len(bomb) < 40_000
    started = time.perf_counter()
    with pytest.raises(BatchInputError) as refused:
        read_table("wide.csv", bomb)
    assert refused.value.key == "batch_too_many_columns" and refused.value.values == {"limit": MAX_COLUMNS}
    assert time.perf_counter() - started < 1


def test_a_csv_with_many_repeated_column_names_is_named_in_linear_time():
    header = ",".join(["x"] * MAX_COLUMNS)
    table = read_table("same.csv", f"{header}\n{header}\n".encode())
    assert len(set(table.columns)) == MAX_COLUMNS


def test_the_page_reads_a_table_in_a_worker():
    bomb = _declaring(workbook_bytes([["prompt"], ["hello"]]), "A1:XFD1048576")
    with Ticker() as ticker:
        table = read_table_isolated("bomb.xlsx", bomb)
    assert table.rows == [{"prompt": "hello"}] and ticker.longest_gap < 0.5
    with pytest.raises(BatchInputError) as refused:
        read_table_isolated("wide.csv", (",".join(["c"] * 600) + "\n").encode())
    assert refused.value.key == "batch_too_many_columns"


# --- rows 4 and 12: Extract's schema ---


def test_a_backtracking_pattern_is_matched_in_linear_time():
    schema = parse_schema(json.dumps({"type": "object", "properties": {"code": {"type": "string", "pattern": "^(a+)+$"}}}))
    started = time.perf_counter()
    reading = read_answer(json.dumps({"code": "a" * 28 + "!"}), schema)
    assert time.perf_counter() - started < 0.5
    assert reading.errors and "does not match" in reading.errors[0]
    assert read_answer(json.dumps({"code": "aaaa"}), schema).valid


def test_pattern_properties_and_additional_properties_use_the_same_engine():
    schema = parse_schema(json.dumps({"type": "object", "patternProperties": {"^(a+)+$": {"type": "integer"}},
                                      "additionalProperties": False}))
    started = time.perf_counter()
    reading = read_answer(json.dumps({"a" * 30 + "!": 1, "aaa": "x"}), schema)
    assert time.perf_counter() - started < 0.5
    assert len(reading.errors) == 2


def test_a_pattern_the_linear_engine_cannot_run_is_refused_with_the_reason():
    with pytest.raises(ExtractInputError) as refused:
        parse_schema(json.dumps({"type": "object", "properties": {"x": {"type": "string", "pattern": r"^(a)\1$"}}}))
    assert refused.value.key == "extract_schema_pattern" and refused.value.values["pattern"] == r"^(a)\1$"


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"x": {"$ref": "#/$defs/a"}},
     "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}},
    {"type": "object", "properties": {"x": {"$ref": "#"}}},
])
def test_a_ref_loop_is_refused_at_input(schema):
    with pytest.raises(ExtractInputError) as refused:
        parse_schema(json.dumps(schema))
    assert refused.value.key == "extract_schema_ref_loop"


def test_refs_that_double_at_each_level_are_refused():
    defs = {f"d{i}": {"type": "object", "properties": {"l": {"$ref": f"#/$defs/d{i + 1}"},
                                                       "r": {"$ref": f"#/$defs/d{i + 1}"}}} for i in range(30)}
    defs["d30"] = {"type": "string"}
    with pytest.raises(ExtractInputError) as refused:
        parse_schema(json.dumps({"type": "object", "properties": {"x": {"$ref": "#/$defs/d0"}}, "$defs": defs}))
    assert refused.value.key == "extract_schema_too_big_expanded"


def test_a_ref_to_nowhere_is_refused_and_a_good_ref_still_works():
    with pytest.raises(ExtractInputError) as refused:
        parse_schema(json.dumps({"type": "object", "properties": {"x": {"$ref": "#/$defs/missing"}}}))
    assert "points to nothing" in refused.value.values["reason"]
    schema = parse_schema(json.dumps({"type": "object", "properties": {"x": {"$ref": "#/$defs/price"}},
                                      "$defs": {"price": {"type": "number"}}, "required": ["x"]}))
    assert read_answer('{"x": 8.5}', schema).valid and not read_answer('{"x": "eight"}', schema).valid


def test_the_host_can_tune_the_workers_and_a_bad_value_keeps_the_default():
    from atri.isolation import CPU_S, pool_from

    tuned = pool_from({"ATRI_WORKERS": "3", "ATRI_WORK_CPU_S": "2.5", "ATRI_WORK_MEMORY_MB": "256", "ATRI_WORK_WALL_S": "x"})
    assert (tuned.size, tuned.limits.cpu_s, tuned.limits.memory_bytes) == (3, 2.5, 256 * 2**20)
    assert tuned.limits.wall_s == Limits().wall_s and pool_from({"ATRI_WORK_CPU_S": "-1"}).limits.cpu_s == CPU_S
