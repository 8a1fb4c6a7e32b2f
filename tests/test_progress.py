"""Progress bars: drawn on a terminal, silent everywhere else."""
import io

import pytest

from raylite._progress import progress_bar, progress_enabled


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_bar_when_output_is_not_a_terminal(capsys):
    with progress_bar("work", total=3, unit="blocks") as bar:
        bar.advance()
        bar.advance(2)
    assert not bar.shown and bar.completed == 3
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_enabled_only_on_a_terminal_and_not_when_switched_off(monkeypatch):
    assert progress_enabled(_Terminal())
    assert not progress_enabled(io.StringIO())
    monkeypatch.setenv("RAYLITE_PROGRESS", "0")
    assert not progress_enabled(_Terminal())


def test_bar_draws_its_description_and_count_on_a_console():
    rich_console = pytest.importorskip("rich.console")
    out = io.StringIO()
    console = rich_console.Console(file=out, force_terminal=True, width=120)
    with progress_bar("Map_Batches", total=5, unit="blocks", console=console) as bar:
        assert bar.shown
        bar.advance(3)
        bar.update(description="Map_Batches->Filter")
    text = out.getvalue()
    assert "Map_Batches->Filter" in text and "3/5" in text and "blocks" in text


def test_unknown_total_is_a_spinner_that_still_counts():
    rich_console = pytest.importorskip("rich.console")
    out = io.StringIO()
    console = rich_console.Console(file=out, force_terminal=True, width=120)
    with progress_bar("training", console=console) as bar:
        bar.update(completed=7)
    assert bar.completed == 7 and "training" in out.getvalue()
