"""The ``tune`` command: look at experiments on disk.

    tune ls EXPERIMENT_DIR [--sort METRIC [--desc]] [--filter "METRIC > 0.5"] [--output csv]
            [--columns a,b,c] [--limit N]
    tune lsx RESULTS_DIR                     (default: ~/ray_results)

It reads what raylite.tune writes (``experiment_state.json`` in each experiment folder); it
needs no running driver. The ``ls`` table fits the terminal: it shows the trial, its status, the
config and the metrics the trainable reported (before Tune's own bookkeeping columns), as many
as fit, and names the columns it left out (``--columns`` picks them, ``--output csv`` has all).
"""

from __future__ import annotations

import argparse
import csv
import operator
import os
import re
import shutil
import sys
from typing import Any

from raylite.cli._common import run_subcommand
from raylite.cli._session import table

_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
        "==": operator.eq, "!=": operator.ne}
_HIDDEN = {"config", "trial_id", "experiment_id", "date", "timestamp", "hostname", "node_ip",
           "pid", "time_this_iter_s", "done"}
# what Tune adds to every result: shown after the trainable's own metrics, in this order
_BOOKKEEPING = ["training_iteration", "time_total_s", "time_since_restore",
                "iterations_since_restore", "timesteps_total", "episodes_total",
                "timesteps_since_restore", "should_checkpoint", "checkpoint_dir_name"]
MAX_CELL = 24  # characters of one cell in the table; longer values end in "…"


def _trial_rows(path: str) -> list[dict[str, Any]]:
    from raylite.tune import ExperimentAnalysis
    analysis = ExperimentAnalysis(path)
    rows = []
    for trial in analysis.trials:
        row: dict[str, Any] = {"trial_id": trial.trial_id, "status": trial.status}
        row.update({f"config/{k}": v for k, v in _flatten(trial.config).items()})
        row.update({k: v for k, v in (trial.last_result or {}).items()
                    if k not in _HIDDEN and not isinstance(v, (dict, list))})
        rows.append(row)
    return rows


def _flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _parse_filter(text: str) -> tuple[str, Any, float]:
    match = re.fullmatch(r"\s*([\w/.\-]+)\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*", text)
    if match is None:
        raise ValueError(f"cannot read the filter {text!r}; write it like \"loss < 0.5\" "
                         "(operators: > >= < <= == !=)")
    column, op, value = match.groups()
    return column, _OPS[op], float(value)


def cmd_ls(args: argparse.Namespace) -> int:
    experiments = _experiments_in(args.experiment_dir)
    if experiments:
        shown = ", ".join(experiments[:3]) + (", ..." if len(experiments) > 3 else "")
        print(f"tune ls: {args.experiment_dir} is a folder of {len(experiments)} experiments "
              f"({shown}), not one experiment: list them with `tune lsx {args.experiment_dir}`, "
              f"or show one with `tune ls {os.path.join(args.experiment_dir, experiments[0])}`",
              file=sys.stderr)
        return 2
    try:
        rows = _trial_rows(args.experiment_dir)
        if args.filter:
            column, op, value = _parse_filter(args.filter)
            rows = [r for r in rows if isinstance(r.get(column), (int, float)) and op(r[column], value)]
    except ValueError as exc:
        print(f"tune ls: {exc}", file=sys.stderr)
        return 2
    if args.sort:
        missing = float("-inf") if args.desc else float("inf")
        rows.sort(key=lambda r: r.get(args.sort) if isinstance(r.get(args.sort), (int, float)) else missing,
                  reverse=args.desc)
    if args.limit is not None:
        rows = rows[:args.limit]
    columns = list(dict.fromkeys(k for r in rows for k in r))
    if args.columns:
        wanted = [c.strip() for c in args.columns.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in columns]
        if unknown:
            from raylite.core._options import did_you_mean
            print(f"tune ls: no column {unknown[0]!r}{did_you_mean(unknown[0], columns)} "
                  f"Columns: {', '.join(columns)}", file=sys.stderr)
            return 2
        columns = wanted
    if args.output == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return 0
    cells = [{c: _cell(r.get(c, "")) for c in columns} for r in rows]
    if args.columns:
        shown, left_out = columns, []
    else:
        width = shutil.get_terminal_size((120, 24)).columns
        shown, left_out = choose_columns(cells, _ordered(columns, args.sort), width)
    print(table(cells, shown))
    print(f"\n{len(rows)} trials")
    if left_out:
        print(f"{len(left_out)} more column(s) did not fit the terminal: {', '.join(left_out)} "
              "(--columns a,b,c to choose, --output csv for all)")
    return 0


def _ordered(columns: list[str], sort: str | None) -> list[str]:
    """trial_id, status, the sort column, config, the trainable's metrics, Tune's bookkeeping."""
    first = [c for c in ("trial_id", "status", sort) if c in columns]
    config = [c for c in columns if c.startswith("config/") and c not in first]
    bookkeeping = [c for c in _BOOKKEEPING if c in columns and c not in first]
    metrics = [c for c in columns if c not in first + config + bookkeeping]
    return list(dict.fromkeys(first + config + metrics + bookkeeping))


def choose_columns(cells: list[dict[str, str]], columns: list[str],
                   width: int) -> tuple[list[str], list[str]]:
    """(the columns, in order, that fit ``width`` characters; those left out)."""
    shown, left_out, used = [], [], 0
    for column in columns:
        need = max([len(column)] + [len(row.get(column, "")) for row in cells])
        need += 2 if shown else 0
        if used + need <= width or not shown:
            shown.append(column)
            used += need
        else:
            left_out.append(column)
    return shown, left_out


def _experiments_in(path: str) -> list[str]:
    """The experiment folders directly inside ``path`` when it is not an experiment itself."""
    if not os.path.isdir(path) or os.path.exists(os.path.join(path, "experiment_state.json")):
        return []
    return sorted(name for name in os.listdir(path)
                  if os.path.exists(os.path.join(path, name, "experiment_state.json")))


def _cell(value: Any) -> str:
    text = _fmt(value)
    return text if len(text) <= MAX_CELL else text[:MAX_CELL - 1] + "…"


def cmd_lsx(args: argparse.Namespace) -> int:
    from raylite._storage import results_dir
    root = results_dir(args.results_dir)
    if not os.path.isdir(root):
        print(f"tune lsx: {root} does not exist; run an experiment first, or pass its folder",
              file=sys.stderr)
        return 2
    rows = []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if not os.path.exists(os.path.join(path, "experiment_state.json")):
            continue
        trials = _trial_rows(path)
        statuses: dict[str, int] = {}
        for t in trials:
            statuses[t["status"]] = statuses.get(t["status"], 0) + 1
        rows.append({"experiment": name, "trials": len(trials),
                     "status": ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))})
    print(table(rows, ["experiment", "trials", "status"]))
    return 0


def _fmt(value: Any) -> str:
    return f"{value:.5g}" if isinstance(value, float) else str(value)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tune", description="Look at raylite.tune experiments.")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    ls = sub.add_parser("ls", help="the trials of one experiment, as a table")
    ls.add_argument("experiment_dir")
    ls.add_argument("--sort", help="a metric to sort by (ascending; --desc for descending)")
    ls.add_argument("--desc", action="store_true")
    ls.add_argument("--filter", help='keep trials where e.g. "loss < 0.5"')
    ls.add_argument("--output", choices=["table", "csv"], default="table")
    ls.add_argument("--columns", help="the columns to show, comma-separated (default: those "
                                      "that fit the terminal)")
    ls.add_argument("--limit", type=_positive, help="show at most N trials (after sorting)")
    ls.set_defaults(run=cmd_ls)
    lsx = sub.add_parser("lsx", help="the experiments in a results folder")
    lsx.add_argument("results_dir", nargs="?")
    lsx.set_defaults(run=cmd_lsx)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_subcommand(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
