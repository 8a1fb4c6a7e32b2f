"""The ``raylite`` console script: --version, microbenchmark, argument errors, cheap import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import raylite
from raylite import _microbenchmark
from raylite.cli import _raylite


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("RAYLITE_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "raylite.cli._raylite", *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_version_prints_package_version():
    done = run_cli("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"raylite {raylite.__version__}"


def test_installed_entry_point_prints_version():
    script = Path(sys.executable).with_name("raylite")
    if not script.exists():
        pytest.skip("the raylite console script is not installed next to this python")
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"raylite {raylite.__version__}"


def test_no_subcommand_prints_help_and_fails(capsys):
    assert _raylite.main([]) == 2
    assert "microbenchmark" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["0", "-1", "two"])
def test_microbenchmark_rejects_bad_num_cpus(capsys, bad):
    with pytest.raises(SystemExit) as exit_info:
        _raylite.main(["microbenchmark", "--num-cpus", bad])
    assert exit_info.value.code == 2
    assert "--num-cpus" in capsys.readouterr().err


def test_import_of_the_cli_loads_no_workload_or_numpy():
    code = ("import sys, raylite.cli._raylite; "
            "print(sorted(m for m in ('numpy', 'psutil', 'raylite._microbenchmark') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_microbenchmark_quick_prints_every_figure_positive():
    pytest.importorskip("numpy")
    done = run_cli("microbenchmark", "--quick")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line and not line.startswith("#")]
    figures = {}
    for line in lines:
        label, value, unit = line.rsplit(None, 2)
        figures[label.strip()] = (float(value), unit)
    for figure in _microbenchmark.FIGURES:
        assert figure.label in figures, f"{figure.label!r} missing from:\n{done.stdout}"
        value, unit = figures[figure.label]
        assert value > 0 and unit == figure.unit, (figure, value, unit)
    assert len(figures) == len(_microbenchmark.FIGURES)


def test_format_value_is_parseable():
    for value in (12345.678, 42.125, 0.00031234, 1e-7):
        assert float(_microbenchmark.format_value(value)) == pytest.approx(value, rel=1e-3)
    assert _microbenchmark.format_value(None) == "skipped"
