"""Chapter 2 of *Learning Ray* runs on raylite and prints what the book says it prints.

examples/ch02_core_api.py holds the book's Examples 2-1 to 2-11 as written, each block
starting with a ``# Example 2-N.`` comment. The ``chapter2`` fixture runs the blocks in order,
once, in one namespace on this module's 2-CPU runtime, recording each block's printed output;
the tests then compare that with the book. Example 2-1 (``ray.init()``) would start a second
runtime here, so it runs with the whole script in a subprocess instead.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import raylite

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "ch02_core_api.py"

BOOK_DATA = [(0, "Learning"), (1, "Ray"), (2, "Flexible"), (3, "Distributed"),
             (4, "Python"), (5, "for"), (6, "Data"), (7, "Science")]
BOOK_DATA_LINES = [repr(item) for item in BOOK_DATA]
RUNTIME_LINE = re.compile(r"^Runtime: (\d+\.\d+) seconds, data:$")


class Chapter:
    """The blocks of the chapter's script, run in order: their output, time and namespace."""

    def __init__(self, path: Path, skip: set[str]):
        self.namespace: dict = {"__name__": "learning_ray_ch2", "ray": raylite}
        self.outputs: dict[str, str] = {}
        self.seconds: dict[str, float] = {}
        self.errors: dict[str, BaseException] = {}
        for name, first_line, code in split_examples(path):
            if name in skip:
                continue
            padded = "\n" * (first_line - 1) + code  # tracebacks point at the script's lines
            buffer = io.StringIO()
            start = time.perf_counter()
            try:
                with contextlib.redirect_stdout(buffer):
                    exec(compile(padded, str(path), "exec"), self.namespace)
            except Exception as exc:  # reported by the tests of this example
                self.errors[name] = exc
            self.seconds[name] = time.perf_counter() - start
            self.outputs[name] = buffer.getvalue()

    def output(self, name: str) -> list[str]:
        """The lines block ``name`` printed; raises the block's error if it failed."""
        if name in self.errors:
            raise AssertionError(f"{name} raised {self.errors[name]!r}") from self.errors[name]
        return self.outputs[name].splitlines()


def split_examples(path: Path) -> list[tuple[str, int, str]]:
    """(name, first line number, code) of each ``# Example 2-N.`` block of the script."""
    blocks: list[tuple[str, int, str]] = []
    for number, line in enumerate(path.read_text().splitlines(keepends=True), start=1):
        marker = re.match(r"# (Example 2-\d+)\.", line)
        if marker:
            blocks.append((marker.group(1), number, ""))
        elif blocks:
            name, first, code = blocks[-1]
            blocks[-1] = (name, first, code + line)
    return blocks


def runtime_groups(lines: list[str]) -> list[tuple[float, list[str]]]:
    """Split print_runtime output into (seconds, data lines) groups."""
    groups: list[tuple[float, list[str]]] = []
    for line in lines:
        match = RUNTIME_LINE.match(line)
        if match:
            groups.append((float(match.group(1)), []))
        else:
            assert groups, f"data printed before any 'Runtime:' line: {line!r}"
            groups[-1][1].append(line)
    return groups


@pytest.fixture(scope="module")
def ray():
    raylite.shutdown()
    raylite.init(num_cpus=2)
    yield raylite
    raylite.shutdown()


@pytest.fixture(scope="module")
def chapter2(ray):
    return Chapter(SCRIPT, skip={"Example 2-1"})


def test_script_has_every_example_in_order():
    names = [name for name, _, _ in split_examples(SCRIPT)]
    assert names == [f"Example 2-{n}" for n in range(1, 12)]


def test_example_2_3_serial_retrieval_takes_2_8_seconds(chapter2):
    [(seconds, data_lines)] = runtime_groups(chapter2.output("Example 2-3"))
    assert data_lines == BOOK_DATA_LINES
    assert 2.8 <= seconds < 3.5  # the sum of the sleeps, (0 + 1 + ... + 7) / 10


def test_example_2_5_ray_tasks_run_in_parallel(chapter2):
    [(seconds, data_lines)] = runtime_groups(chapter2.output("Example 2-5"))
    assert data_lines == BOOK_DATA_LINES
    # The book: 0.71 s on 8 cores. On 2 CPUs the ideal schedule takes 1.6 s; serially, 2.8 s.
    assert 0.7 <= seconds < 2.4
    assert chapter2.seconds["Example 2-5"] < 2.4


def test_example_2_6_tasks_read_the_database_from_the_object_store(ray, chapter2):
    chapter2.output("Example 2-6")
    assert isinstance(chapter2.namespace["database_object_ref"], ray.ObjectRef)
    new_retrieve_task = chapter2.namespace["retrieve_task"]
    assert ray.get([new_retrieve_task.remote(item) for item in (1, 2)]) == BOOK_DATA[1:3]


def test_example_2_7_wait_returns_results_in_pairs_as_they_finish(chapter2):
    groups = runtime_groups(chapter2.output("Example 2-7"))
    assert [data_lines for _, data_lines in groups] == [BOOK_DATA_LINES[i:i + 2]
                                                        for i in range(0, 8, 2)]
    times = [seconds for seconds, _ in groups]
    assert times == sorted(times) and times[-1] < 7.0
    assert chapter2.namespace["all_data"] == BOOK_DATA  # the while loop ran until none was left


def test_example_2_8_follow_up_tasks_receive_the_values_of_their_ref_arguments(chapter2):
    assert chapter2.output("Example 2-8") == [
        "((0, 'Learning'), (1, 'Ray'))",
        "((2, 'Flexible'), (3, 'Distributed'))",
        "((4, 'Python'), (5, 'for'))",
        "((6, 'Data'), (7, 'Science'))",
    ]
    assert chapter2.namespace["result"] == [None] * 4


def test_example_2_9_data_tracker_actor_keeps_state(ray, chapter2):
    chapter2.output("Example 2-9")
    tracker = chapter2.namespace["DataTracker"].remote()
    tracker.increment.remote()
    tracker.increment.remote()
    assert ray.get(tracker.counts.remote()) == 2


def test_example_2_10_tasks_increment_the_actor_they_are_passed_eight_times(chapter2):
    assert chapter2.output("Example 2-10") == ["8"]
    assert chapter2.namespace["data"] == BOOK_DATA


def test_example_2_11_a_task_can_submit_tasks_it_owns(ray, chapter2):
    chapter2.output("Example 2-11")
    assert ray.get(chapter2.namespace["res"], timeout=10) is None
    assert ray.get(chapter2.namespace["val"]) == "value"


def test_the_chapter_runs_as_a_script_from_ray_init_on():
    """Example 2-1 included: ``python examples/ch02_core_api.py`` prints the book's output."""
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                            timeout=60, cwd=SCRIPT.parent.parent,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert result.returncode == 0, result.stderr
    lines = [RUNTIME_LINE.sub("Runtime: _", line) for line in result.stdout.splitlines()]
    pairs = [line for i in range(0, 8, 2) for line in ["Runtime: _", *BOOK_DATA_LINES[i:i + 2]]]
    assert lines == (["Runtime: _", *BOOK_DATA_LINES] * 2 + pairs + [
        "((0, 'Learning'), (1, 'Ray'))",
        "((2, 'Flexible'), (3, 'Distributed'))",
        "((4, 'Python'), (5, 'for'))",
        "((6, 'Data'), (7, 'Science'))",
        "8",
    ])
