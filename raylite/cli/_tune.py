"""The ``tune`` command: look at experiments on disk.

    tune ls EXPERIMENT_DIR [--sort METRIC [--desc]] [--filter "METRIC > 0.5"] [--output csv]
    tune lsx RESULTS_DIR                     (default: ~/ray_results)

It reads what raylite.tune writes (``experiment_state.json`` in each experiment folder); it
needs no running driver.
"""

from __future__ import annotations

import argparse
import csv
import operator
import os
import re
import sys
from typing import Any

from raylite.cli._common import run_subcommand
from raylite.cli._session import table

_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
        "==": operator.eq, "!=": operator.ne}
_HIDDEN = {"config", "trial_id", "experiment_id", "date", "timestamp", "hostname", "node_ip",
           "pid", "time_this_iter_s", "done"}


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
    columns = list(dict.fromkeys(k for r in rows for k in r))
    if args.output == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    else:
        print(table([{c: _fmt(r.get(c, "")) for c in columns} for r in rows], columns))
        print(f"\n{len(rows)} trials")
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tune", description="Look at raylite.tune experiments.")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    ls = sub.add_parser("ls", help="the trials of one experiment, as a table")
    ls.add_argument("experiment_dir")
    ls.add_argument("--sort", help="a metric to sort by (ascending; --desc for descending)")
    ls.add_argument("--desc", action="store_true")
    ls.add_argument("--filter", help='keep trials where e.g. "loss < 0.5"')
    ls.add_argument("--output", choices=["table", "csv"], default="table")
    ls.set_defaults(run=cmd_ls)
    lsx = sub.add_parser("lsx", help="the experiments in a results folder")
    lsx.add_argument("results_dir", nargs="?")
    lsx.set_defaults(run=cmd_lsx)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_subcommand(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
