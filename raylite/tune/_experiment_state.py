"""What an experiment directory holds so that an interrupted run can be taken up again.

    <experiment>/
        experiment_state.json   snapshot: every trial's config, status, last result, checkpoint
        experiment_state.pkl    the same snapshot exactly (cloudpickle), plus the search space
        searcher_state.pkl      the searcher as of the snapshot, and the journal position
        trial_journal.pkl       append-only: what happened since the snapshot, as it happened

The snapshot is rewritten every few seconds and at the end; it is too big to write on every
event, and creating files is slow on busy disks. The journal is the cheap, exact part: one
record (pickled, flushed to the OS at once) when a trial is created - followed by the searcher
as it stands after suggesting it - when a trial gets a new checkpoint, and when it ends. So a
driver killed by SIGKILL loses nothing the OS has (power loss aside). Records are numbered;
the snapshot says the last number it includes, and the journal is emptied after each snapshot.
Loading is:

    snapshot (.pkl) --+-- + the journal's trial records       -> trials, as they stood
    searcher (.pkl) --+-- or the journal's last searcher record
                      +-- + the "end" records after that       -> replayed into the searcher

A record torn by the kill (the last one) is ignored. See ``ExperimentRunner.save_state`` /
``restore_state`` for the writing and taking-up sides.
"""

from __future__ import annotations

import io
import json
import os
import pickle
from typing import Any

STATE_JSON = "experiment_state.json"
STATE_PICKLE = "experiment_state.pkl"
SEARCHER_PICKLE = "searcher_state.pkl"
JOURNAL = "trial_journal.pkl"
_FIX = "the experiment cannot be taken up; run it afresh under another name"


def write_atomic(path: str, data: bytes) -> bool:
    """Replace ``path`` with ``data`` so that a reader sees the old file or the new, never
    half; False if it could not be written."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        return False
    return True


def dumps(value: Any) -> bytes:
    """pickle, or cloudpickle for what plain pickle cannot take (lambdas, ``__main__`` classes)."""
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - pickle raises several types for unpicklable values
        import cloudpickle
        return cloudpickle.dumps(value)


class Journal:
    """The append-only record of trial events (see the module docstring)."""

    def __init__(self, experiment_dir: str, seq: int = 0):
        self.path = os.path.join(experiment_dir, JOURNAL)
        self.seq = seq
        self._file: io.BufferedWriter | None = None

    def record(self, kind: str, payload: Any) -> int:
        """Append one ``(seq, kind, payload)`` record (payload: a trial's state, or for kind
        "searcher" the searcher's bytes); returns its number."""
        if self._file is None:
            self._file = open(self.path, "ab")  # noqa: SIM115 - held open for the experiment
        self.seq += 1
        try:
            blob = dumps((self.seq, kind, payload))
        except Exception:  # noqa: BLE001 - a trial whose state cannot be pickled is not journaled
            return self.seq
        self._file.write(blob)
        self._file.flush()
        return self.seq

    def truncate(self) -> None:
        """Forget the records: a snapshot that includes them has just been written."""
        if self._file is None:
            self._file = open(self.path, "ab")  # noqa: SIM115 - held open for the experiment
        self._file.truncate(0)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_journal(experiment_dir: str, after: int = 0) -> list[tuple[int, str, dict]]:
    """The journal's records numbered after ``after``, oldest first (a torn last one dropped)."""
    path = os.path.join(experiment_dir, JOURNAL)
    records: list[tuple[int, str, dict]] = []
    if not os.path.exists(path):
        return records
    with open(path, "rb") as f:
        while True:
            try:
                record = pickle.load(f)
            except EOFError:
                break
            except Exception:  # noqa: BLE001 - the record the kill cut short, or a missing module
                break
            if record[0] > after:
                records.append(record)
    return records


def apply_journal(trials: list[dict], records: list[tuple[int, str, dict]]) -> list[dict]:
    """The trial states of a snapshot brought up to date by journal ``records``."""
    by_id = {t["trial_id"]: i for i, t in enumerate(trials)}
    trials = list(trials)
    for _, kind, state in records:
        if kind == "searcher":
            continue
        index = by_id.get(state["trial_id"])
        if index is None:
            by_id[state["trial_id"]] = len(trials)
            trials.append(state)
        elif kind != "add":
            trials[index] = state
    return trials


def load_state(experiment_dir: str) -> dict | None:
    """The experiment as it stood when its driver last wrote anything, or None if there is
    nothing to take up: the snapshot plus the journal after it."""
    import cloudpickle

    from raylite.util._pickle_file import load_pickle
    path = os.path.join(experiment_dir, STATE_PICKLE)
    if not os.path.exists(path):
        return None
    state = load_pickle(path, "experiment state", cloudpickle.loads, fix=_FIX)
    records = read_journal(experiment_dir, state.get("journal_seq", 0))
    state["trials"] = apply_journal(state["trials"], records)
    state["suggested"] = max(state.get("suggested", 0), len(state["trials"]))
    if records:
        state["journal_seq"] = records[-1][0]
    return state


def load_json_state(path: str) -> dict:
    """``experiment_state.json`` (for ``ExperimentAnalysis`` and ``tune ls``), brought up to date
    by the journal when it can be read here."""
    from raylite.util._pickle_file import damaged
    file = path if path.endswith(".json") else os.path.join(path, STATE_JSON)
    with open(file) as f:
        try:
            state = json.load(f)
        except ValueError as exc:
            raise damaged(file, "experiment state", exc, _FIX) from None
    try:
        records = read_journal(os.path.dirname(file), state.get("journal_seq", 0))
    except OSError:
        records = []
    if records:
        state["trials"] = apply_journal(state["trials"], records)
    return state


def searcher_blob(searcher: Any) -> bytes | None:
    """The searcher's state as bytes (through its own ``save`` if it overrides it), or None
    when it cannot be saved."""
    from raylite.tune._searcher import Searcher
    try:
        if type(searcher).save is Searcher.save:
            return pickle.dumps(searcher.get_state(), protocol=pickle.HIGHEST_PROTOCOL)
        scratch = _scratch_path()
        try:
            searcher.save(scratch)
            with open(scratch, "rb") as f:
                return f.read()
        finally:
            _remove(scratch)
    except Exception:  # noqa: BLE001 - a searcher that cannot save starts afresh on resume
        return None


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _scratch_path() -> str:
    """A file for searchers whose own save/restore want a path."""
    import tempfile
    return os.path.join(tempfile.gettempdir(), f"raylite_searcher_{os.getpid()}.pkl")


def load_searcher_blob(searcher: Any, blob: bytes) -> None:
    """Put the state :func:`searcher_blob` took back into ``searcher``."""
    from raylite.tune._searcher import Searcher
    if type(searcher).restore is Searcher.restore:
        searcher.set_state(pickle.loads(blob))
        return
    scratch = _scratch_path()
    with open(scratch, "wb") as f:
        f.write(blob)
    try:
        searcher.restore(scratch)
    finally:
        _remove(scratch)


def save_searcher(searcher: Any, experiment_dir: str, seq: int) -> None:
    """Write ``searcher`` into the experiment folder with the journal position it has seen."""
    blob = searcher_blob(searcher)
    if blob is not None:
        write_atomic(os.path.join(experiment_dir, SEARCHER_PICKLE),
                     pickle.dumps({"seq": seq, "blob": blob}))


def restore_searcher(searcher: Any, experiment_dir: str) -> int | None:
    """Load the newest saved state into ``searcher`` (the journal's last searcher record, else
    the searcher file); returns the journal position it had seen, or None if there was none."""
    newest: tuple[int, bytes] | None = None
    path = os.path.join(experiment_dir, SEARCHER_PICKLE)
    if os.path.exists(path):
        from raylite.util._pickle_file import load_pickle
        saved = load_pickle(path, "searcher state", fix=f"delete it to restart the searcher "
                            f"from the trials in {STATE_PICKLE}")
        newest = (saved["seq"], saved["blob"])
    for seq, kind, blob in read_journal(experiment_dir):
        if kind == "searcher" and (newest is None or seq > newest[0]):
            newest = (seq, blob)
    if newest is None:
        return None
    load_searcher_blob(searcher, newest[1])
    return newest[0]
