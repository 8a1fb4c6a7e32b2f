"""The ``raylite`` console script: ``raylite --version``, ``raylite microbenchmark [--quick]``.

    main(argv) ──argparse──▶ args.run(args) ──▶ exit status

Every subcommand is a pair of small functions: ``_add_<name>(subparsers)`` declares its
arguments and sets ``run=_<name>``; ``_<name>(args)`` does the work and returns the exit
status. A new subcommand (start, stop, status, memory, timeline) is one more pair and one more
entry in ``_SUBCOMMANDS``. Heavy imports (the runtime's workloads, numpy) happen inside the
``_<name>`` functions, never at module level, so ``raylite --help`` starts fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

import raylite
from raylite.cli._common import positive_int, run_subcommand


def _add_microbenchmark(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "microbenchmark", help="measure the core runtime: tasks, actor calls, objects",
        description="Start raylite locally and print its core figures, one line each: "
                    "name, value, unit (/s: higher is better; s: lower is better).")
    parser.add_argument("--quick", action="store_true",
                        help="run a fifth of the calls (scale 0.2), for a fast check")
    parser.add_argument("--num-cpus", type=positive_int, default=2, metavar="N",
                        help="CPUs (worker processes) to start raylite with (default: 2)")
    parser.set_defaults(run=_microbenchmark)


def _microbenchmark(args: argparse.Namespace) -> int:
    from raylite import _microbenchmark as workloads

    scale = 0.2 if args.quick else 1.0
    print(f"# raylite {raylite.__version__} microbenchmark: num_cpus={args.num_cpus}, "
          f"scale={scale}", flush=True)
    width = max(len(figure.label) for figure in workloads.FIGURES)
    for key, value in workloads.iter_figures(raylite, num_cpus=args.num_cpus, scale=scale):
        figure = workloads.FIGURES_BY_KEY[key]
        unit = figure.unit if value is not None else "(needs numpy)"
        print(f"{figure.label:<{width}}  {workloads.format_value(value):>10} {unit}", flush=True)
    return 0


def _add_session_commands(subparsers: argparse._SubParsersAction) -> None:
    from raylite.cli import _session
    _session.add_parsers(subparsers)


def _add_cluster_commands(subparsers: argparse._SubParsersAction) -> None:
    from raylite.cli import _cluster
    _cluster.add_parsers(subparsers, include_status=False)  # status: see _session


_SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_microbenchmark,
    _add_session_commands,
    _add_cluster_commands,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``raylite`` argument parser with every subcommand in ``_SUBCOMMANDS``."""
    parser = argparse.ArgumentParser(
        prog="raylite", description="raylite: tasks, actors and objects, compact and fast.")
    parser.add_argument("--version", action="version", version=f"raylite {raylite.__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add_subcommand in _SUBCOMMANDS:
        add_subcommand(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``raylite`` command line; returns the exit status.

    Example:
        >>> main(["--version"])  # doctest: +SKIP
        raylite 0.1.0
    """
    return run_subcommand(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
