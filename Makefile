# The README's two commands. Each bootstraps .venv from nothing on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# The peers the benchmarks compare against (Ray 2.60 and its libraries), in a venv of their own
# inside the checkout (git-ignored); every bench script defaults to it (RAY_PYTHON overrides).
BENCH_VENV := .bench-venv
BENCH_PY := $(BENCH_VENV)/bin/python
BENCH_STAMP := $(BENCH_VENV)/.installed
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: demo test bench bench-env clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, from the CPU wheel these machines carry (else pip pulls a multi-GB CUDA build)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

test: $(STAMP)
	$(PY) -m pytest tests

$(BENCH_STAMP):
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install -q --upgrade pip
	# torch's CPU wheel first, so that Ray's libraries do not pull a multi-GB CUDA build
	$(BENCH_PY) -m pip install -q torch==2.13.0 --extra-index-url $(TORCH_INDEX)
	$(BENCH_PY) -m pip install -q "ray[default,data,train,tune,serve,rllib]==2.60.*" numpy
	touch $(BENCH_STAMP)

bench-env: $(BENCH_STAMP)

bench: $(STAMP) $(BENCH_STAMP)
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) bench/core.py

clean:
	rm -rf $(VENV) $(BENCH_VENV)
