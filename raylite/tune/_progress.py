"""The progress table: trials, their status, parameters and latest metrics.

On a terminal the table is redrawn in place (at most every ``max_report_frequency`` seconds);
elsewhere (a file, a pipe, pytest) the final table is printed once at the end; ``verbose=0``
prints nothing. ``verbose=3`` also prints every result as it arrives.
"""

from __future__ import annotations

import datetime
import sys
import time
from typing import Any, TextIO

from raylite.tune._trial import Trial

AUTO_RESULT_KEYS = frozenset({
    "training_iteration", "time_this_iter_s", "time_total_s", "time_since_restore",
    "iterations_since_restore", "timestamp", "pid", "hostname", "node_ip", "date", "done",
    "trial_id", "experiment_id", "experiment_tag", "config", "timesteps_total",
    "episodes_total", "timesteps_since_restore", "should_checkpoint", "warmup_time",
})
_ORDER = {Trial.RUNNING: 0, Trial.PENDING: 1, Trial.PAUSED: 2, Trial.ERROR: 3, Trial.TERMINATED: 4}


class ProgressReporter:
    """Base class of reporters: ``should_report`` then ``report`` from the experiment loop."""

    def setup(self, start_time: float | None = None, total_samples: int | None = None,
              metric: str | None = None, mode: str | None = None, **kwargs: Any) -> None:
        pass

    def should_report(self, trials: list[Trial], done: bool = False) -> bool:
        return True

    def report(self, trials: list[Trial], done: bool, *sys_info: str) -> None:
        raise NotImplementedError


class CLIReporter(ProgressReporter):
    """A table of trials for the terminal.

    Args:
        metric_columns: result fields to show (a list, or a dict of field -> header);
            default: the experiment's metric and the first fields trials report.
        parameter_columns: config keys to show; default: the searched ones.
        max_progress_rows: rows to show; the rest are summarized by status.
        max_report_frequency: seconds between redraws.
        metric, mode: mark the current best trial.

    Example:
        >>> from raylite import tune
        >>> reporter = tune.CLIReporter(metric_columns=["loss"], max_progress_rows=5)
    """

    def __init__(self, metric_columns: list | dict | None = None,
                 parameter_columns: list | dict | None = None, total_samples: int | None = None,
                 max_progress_rows: int = 20, max_error_rows: int = 20,
                 max_report_frequency: float = 1.0, infer_limit: int = 3,
                 print_intermediate_tables: bool | None = None, metric: str | None = None,
                 mode: str | None = None, sort_by_metric: bool = False,
                 out: TextIO | None = None):
        self._metric_columns = metric_columns
        self._parameter_columns = parameter_columns
        self._total_samples = total_samples
        self._max_rows = max_progress_rows
        self._max_error_rows = max_error_rows
        self._frequency = max_report_frequency
        self._infer_limit = infer_limit
        self._intermediate = print_intermediate_tables
        self._metric, self._mode = metric, mode
        self._sort_by_metric = sort_by_metric
        self._out = out
        self._last_report = 0.0
        self._start = time.time()
        self._lines_drawn = 0
        self._header_info: list[str] = []

    def setup(self, start_time=None, total_samples=None, metric=None, mode=None, **kwargs) -> None:
        self._start = start_time or time.time()
        self._total_samples = self._total_samples or total_samples
        self._metric = self._metric or metric
        self._mode = self._mode or mode
        self._header_info = list(kwargs.get("header_info", []))

    @property
    def out(self) -> TextIO:
        return self._out or sys.stdout

    def live(self) -> bool:
        if self._intermediate is not None:
            return self._intermediate
        isatty = getattr(self.out, "isatty", None)
        return bool(isatty and isatty())

    def should_report(self, trials: list[Trial], done: bool = False) -> bool:
        if done:
            return True
        if not self.live():
            return False
        now = time.time()
        if now - self._last_report < self._frequency:
            return False
        self._last_report = now
        return True

    def report(self, trials: list[Trial], done: bool, *sys_info: str) -> None:
        text = self.render(trials, done, *sys_info)
        out = self.out
        redraw = self.live() and self._lines_drawn and self._intermediate is None
        if redraw:
            out.write(f"\x1b[{self._lines_drawn}F\x1b[J")
        out.write(text + "\n")
        out.flush()
        self._lines_drawn = text.count("\n") + 1

    # ---- rendering ------------------------------------------------------------------------
    def render(self, trials: list[Trial], done: bool, *sys_info: str) -> str:
        lines = ["== Status ==", self._time_line()]
        lines += [line for line in sys_info if line]
        best = self._best_line(trials)
        if best:
            lines.append(best)
        lines.append(self._count_line(trials))
        lines.append(self._table(trials))
        errors = [t for t in trials if t.status == Trial.ERROR]
        if errors:
            lines.append(f"Number of errored trials: {len(errors)}")
            rows = [[str(t), t.num_failures, t.error_file or ""] for t in errors[:self._max_error_rows]]
            lines.append(format_table(["Trial name", "# failures", "error file"], rows))
        return "\n".join(lines)

    def _time_line(self) -> str:
        now = datetime.datetime.now()
        elapsed = datetime.timedelta(seconds=round(time.time() - self._start, 2))
        return f"Current time: {now:%Y-%m-%d %H:%M:%S} (running for {str(elapsed)[:11]})"

    def _count_line(self, trials: list[Trial]) -> str:
        counts: dict[str, int] = {}
        for trial in trials:
            counts[trial.status] = counts.get(trial.status, 0) + 1
        total = f"{len(trials)}/{self._total_samples}" if self._total_samples else str(len(trials))
        detail = ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda i: _ORDER[i[0]]))
        return f"Number of trials: {total} ({detail})"

    def _best_line(self, trials: list[Trial]) -> str | None:
        if not self._metric or not self._mode:
            return None
        scored = [t for t in trials if t.metric_value(self._metric, self._mode) is not None]
        if not scored:
            return None
        pick = max if self._mode == "max" else min
        best = pick(scored, key=lambda t: t.metric_value(self._metric, self._mode))
        return (f"Current best trial: {best.trial_id} with {self._metric}="
                f"{best.last_result[self._metric]} and parameters={best.config}")

    def _columns(self, trials: list[Trial]) -> tuple[dict[str, str], dict[str, str]]:
        if self._parameter_columns is not None:
            params = _as_columns(self._parameter_columns)
        else:
            params = {}
            for trial in trials:
                for key in trial.evaluated_params:
                    params.setdefault(key, key)
        if self._metric_columns is not None:
            metrics = _as_columns(self._metric_columns)
        else:
            metrics = {}
            if self._metric:
                metrics[self._metric] = self._metric
            for trial in trials:
                for key in trial.last_result:
                    if len(metrics) >= self._infer_limit:
                        break
                    if key not in AUTO_RESULT_KEYS and _is_scalar(trial.last_result[key]):
                        metrics.setdefault(key, key)
        return params, metrics

    def _row_limit(self) -> int:
        if not self.live():
            return self._max_rows
        import shutil
        room = shutil.get_terminal_size((80, 50)).lines - 16  # the header and the borders
        return max(5, min(self._max_rows, room))  # a redraw cannot climb above the screen

    def _table(self, trials: list[Trial]) -> str:
        params, metrics = self._columns(trials)
        shown = sorted(trials, key=lambda t: (_ORDER[t.status], t.trial_id))
        if self._sort_by_metric and self._metric:
            sign = -1 if self._mode == "max" else 1
            shown.sort(key=lambda t: sign * (t.last_result.get(self._metric) or 0))
        limit = self._row_limit()
        hidden = shown[limit:]
        shown = sorted(shown[:limit], key=lambda t: t.trial_id)
        header = ["Trial name", "status", "loc", *params.values(), *metrics.values(),
                  "iter", "total time (s)"]
        rows = []
        for trial in shown:
            result = trial.last_result
            loc = f"{result['hostname']}:{result['pid']}" if "pid" in result and "hostname" in result else ""
            row = [str(trial), trial.status, loc]
            row += [_fmt(_lookup(trial.config, key)) for key in params]
            row += [_fmt(result.get(key)) for key in metrics]
            row += [_fmt(result.get("training_iteration")), _fmt(result.get("time_total_s"))]
            rows.append(row)
        table = format_table(header, rows)
        if hidden:
            counts: dict[str, int] = {}
            for trial in hidden:
                counts[trial.status] = counts.get(trial.status, 0) + 1
            detail = ", ".join(f"{n} {s}" for s, n in counts.items())
            table += f"\n... {len(hidden)} more trials not shown ({detail})"
        return table


JupyterNotebookReporter = CLIReporter


def _as_columns(columns: list | dict) -> dict[str, str]:
    return dict(columns) if isinstance(columns, dict) else {c: c for c in columns}


def _lookup(config: dict, key: str) -> Any:
    value: Any = config
    for part in key.split("/"):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float, str)) and not isinstance(value, bool)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.5g}"
    return str(value)


def format_table(header: list[str], rows: list[list[Any]]) -> str:
    """A psql-style table, numbers right-aligned."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    numeric = [bool(cells) and all(_numeric(r[i]) for r in cells) for i in range(len(header))]

    def line(values: list[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "| " + " | ".join(parts) + " |"

    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    inner = "|" + "+".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([rule, line(header), inner] + [line(r) for r in cells] + [rule])


def _numeric(text: str) -> bool:
    if text == "":
        return True
    try:
        float(text)
        return True
    except ValueError:
        return False


def result_line(trial: Trial, result: dict) -> str:
    """One line per result, for verbose=3."""
    shown = {k: v for k, v in result.items() if k not in AUTO_RESULT_KEYS and _is_scalar(v)}
    return (f"Result for {trial}: iter={result.get('training_iteration')} "
            + " ".join(f"{k}={_fmt(v)}" for k, v in shown.items()))
