"""Offline data: sample batches written to and read from JSON files (RLlib's ``output`` and
``input_``).

    .offline_data(output="/data/cartpole")   every rollout worker appends each batch it samples
        └── /data/cartpole/output-<date>_worker-<i>_<n>.json    one JSON object per line:
            {"type": "SampleBatch", "columns": {"obs": [[...], ...], "actions": [...], ...}}
            (multi-agent: {"type": "MultiAgentBatch", "policy_batches": {id: SampleBatch}})
    .offline_data(input_="/data/cartpole")   the algorithm learns from those batches instead
        └── JsonReader(dir or glob or files).next() -> the next batch (files cycled in order)

Arrays keep their dtype and shape (``"dtypes"`` in each line), so what is read is what was
written.
"""

from __future__ import annotations

import glob
import json
import os
import time
from typing import Any

import numpy as np

MAX_FILE_SIZE = 64 * 1024 * 1024


class JsonWriter:
    """Appends sample batches, one JSON line each, to files in ``path`` (a new file past
    ``max_file_size`` bytes).

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> JsonWriter(folder).write({"obs": np.zeros((2, 3)), "actions": np.array([0, 1])})
        >>> JsonReader(folder).next()["actions"].tolist()
        [0, 1]
    """

    def __init__(self, path: str, max_file_size: int = MAX_FILE_SIZE, worker_index: int = 0):
        self.path = os.path.abspath(os.path.expanduser(path))
        os.makedirs(self.path, exist_ok=True)
        self.max_file_size = max_file_size
        self.worker_index = worker_index
        self._stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
        self._file_index = 0
        self._file: Any = None

    def write(self, batch: dict[str, Any], env_steps: int | None = None) -> None:
        """Append one batch: a dict of equal-length arrays, or (multi-agent) a dict of policy
        id -> such a dict, written as RLlib's MultiAgentBatch (``env_steps``: its count)."""
        if batch and all(isinstance(value, dict) for value in batch.values()):
            record = {"type": "MultiAgentBatch", "count": env_steps,
                      "policy_batches": {pid: encode_batch(b) for pid, b in batch.items()}}
        else:
            record = encode_batch(batch)
        line = json.dumps(record)
        if self._file is None or self._file.tell() + len(line) > self.max_file_size:
            self._open_next()
        self._file.write(line + "\n")
        self._file.flush()

    def _open_next(self) -> None:
        if self._file is not None:
            self._file.close()
        name = f"output-{self._stamp}_worker-{self.worker_index}_{self._file_index}.json"
        self._file_index += 1
        self._file = open(os.path.join(self.path, name), "a")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class JsonReader:
    """Reads sample batches from JSON files: ``inputs`` is a directory, a glob, a file, or a
    list of files. ``next()`` cycles through every batch of every file, in order; a
    multi-agent run's batch comes back as ``{policy id: batch}``."""

    def __init__(self, inputs: str | list[str]):
        self.files = input_files(inputs)
        self._lines: Any = None
        self._file_index = 0

    def next(self) -> dict[str, np.ndarray]:
        for _ in range(2 * len(self.files) + 1):
            if self._lines is None:
                self._lines = self._read(self.files[self._file_index])
                self._file_index = (self._file_index + 1) % len(self.files)
            line = next(self._lines, None)
            if line is not None:
                return line
            self._lines = None
        raise ValueError(f"no sample batches in {', '.join(self.files)}")

    def read_all_files(self) -> Any:
        """Every batch of every file once."""
        for path in self.files:
            yield from self._read(path)

    @staticmethod
    def _read(path: str) -> Any:
        with open(path) as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield decode_batch(json.loads(line))
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(f"{path}, line {number}: not a sample batch ({exc})") from None


def input_files(inputs: str | list[str]) -> list[str]:
    """The JSON files that ``input_`` names."""
    if isinstance(inputs, (list, tuple)):
        files = [os.path.abspath(os.path.expanduser(f)) for f in inputs]
    else:
        path = os.path.abspath(os.path.expanduser(str(inputs)))
        if os.path.isdir(path):
            files = sorted(glob.glob(os.path.join(path, "*.json")))
        elif any(ch in path for ch in "*?["):
            files = sorted(glob.glob(path))
        else:
            files = [path]
    missing = [f for f in files if not os.path.isfile(f)]
    if not files or missing:
        raise FileNotFoundError(f"no offline data at {inputs}: "
                                f"{'missing ' + ', '.join(missing) if missing else 'no .json files'}"
                                f" (write some with .offline_data(output=DIR))")
    return files


def encode_batch(batch: dict[str, Any]) -> dict[str, Any]:
    columns = {name: np.asarray(value) for name, value in batch.items()}
    return {"type": "SampleBatch",
            "columns": {name: value.tolist() for name, value in columns.items()},
            "dtypes": {name: value.dtype.str for name, value in columns.items()},
            "shapes": {name: list(value.shape) for name, value in columns.items()}}


def single_agent_batch(batch: dict[str, Any], algo_name: str) -> dict[str, np.ndarray]:
    """``batch`` unless it is a multi-agent one, which single-agent learning cannot use."""
    if batch and all(isinstance(value, dict) for value in batch.values()):
        raise ValueError(f"offline data for {algo_name}: these files hold multi-agent batches "
                         f"(policies {', '.join(map(str, batch))}), written by a multi-agent "
                         f"run; raylite learns offline from single-agent batches only")
    return batch


def decode_batch(record: dict[str, Any]) -> dict[str, Any]:
    if record.get("type") == "MultiAgentBatch":
        return {pid: decode_batch(b) for pid, b in record["policy_batches"].items()}
    if record.get("type") != "SampleBatch":
        raise ValueError(f"type {record.get('type')!r} is not 'SampleBatch'")
    out = {}
    for name, values in record["columns"].items():
        dtype = record.get("dtypes", {}).get(name)
        array = np.asarray(values, dtype=np.dtype(dtype) if dtype else None)
        shape = record.get("shapes", {}).get(name)
        out[name] = array.reshape(shape) if shape is not None else array
    return out
