"""The experiment loop behind ``tune.run`` (``raylite.tune._run``).

    searcher.suggest ──> Trial (PENDING) ──scheduler.choose_trial_to_run──> a TrialHost actor
         ^                                                                      │ results
         │ on_trial_result / on_trial_complete                                  v (batches)
         └──────────── driver: stop conditions, scheduler decision, callbacks/loggers

One loop step: create trials while there is room, start waiting trials on idle hosts (actors
are reused from trial to trial), wait for any host's reply, handle it. A host's reply is either
a batch of results (each goes through the stop conditions, the callbacks, the searcher and -
unless a stop condition ended the trial - the scheduler; a STOP or PAUSE drops the rest of the
batch), or the end of a stop, pause or restart request.

Every trial event (created, new checkpoint, ended) is appended to the experiment's journal as
it happens, and a snapshot of the whole experiment is written every STATE_SAVE_INTERVAL_S
(``_experiment_state``), so a driver killed at any point can be resumed.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import raylite
from raylite.exceptions import RayliteError
from raylite.tune import _experiment_state as state_mod
from raylite.tune import _search_space as space_mod
from raylite.tune._checkpoints import CheckpointKeeper, clone_checkpoint
from raylite.tune._experiment_state import STATE_PICKLE, load_state
from raylite.tune._logger import Callback, to_json, write_error
from raylite.tune._progress import AUTO_RESULT_KEYS, ProgressReporter, result_line
from raylite.tune._resources import TrialGroups, remove_group
from raylite.tune._scheduler import TrialScheduler
from raylite.tune._searcher import (Searcher)
from raylite.tune._session import timestamp_string
from raylite.tune._stopper import Stopper
from raylite.tune._trainable import (FUNCTION_STOP_TIMEOUT_S, TrialHost, is_class_trainable, pack_trainable,
                                     trainable_name)
from raylite.tune._trial import Trial

DEFAULT_RESULTS_DIR = "~/ray_results"
STATE_SAVE_INTERVAL_S = 5.0
MAX_EAGER_TRIALS = 16
__all__ = ["TuneError", "ExperimentRunner", "STATE_PICKLE", "load_state", "results_root"]


class TuneError(RayliteError):
    """An experiment could not finish: failed trials, or a broken setup."""


def results_root(storage_path: str | None = None) -> str:
    """Where experiments go: the argument, else $RAYLITE_RESULTS_DIR, else ~/ray_results."""
    from raylite._storage import results_dir
    root = storage_path
    if root is not None and "://" in str(root) and not str(root).startswith("file://"):
        raise ValueError(f"storage_path {root!r}: only local directories are supported")
    return results_dir(root)


class ExperimentRunner:
    """Runs the trials of one experiment to the end; see the module docstring."""

    def __init__(self, trainable: Any, space: dict, *, searcher: Searcher,
                 scheduler: TrialScheduler, stopper: Stopper | None, num_samples: int,
                 metric: str | None, mode: str | None, experiment_dir: str, name: str,
                 actor_options: dict, resources: dict, max_concurrent: int, max_failures: int,
                 fail_fast: bool | str, callbacks: list[Callback], reporter: ProgressReporter | None,
                 verbose: int, time_budget_s: float | None, checkpoint_freq: int,
                 checkpoint_at_end: bool, reuse_actors: bool,
                 trial_name_creator: Callable | None, trial_dirname_creator: Callable | None,
                 seed: int | None = None, keeper: CheckpointKeeper | None = None,
                 trial_groups: TrialGroups | None = None):
        self.trainable = trainable
        self.trainable_name = trainable_name(trainable)
        self.is_class = is_class_trainable(trainable)
        self.space = space
        self.searcher, self.scheduler, self.stopper = searcher, scheduler, stopper
        self.num_samples = num_samples
        self.metric, self.mode = metric, mode
        self.experiment_dir, self.name = experiment_dir, name
        self.actor_options, self.resources = actor_options, resources
        self.groups = trial_groups  # each trial reserves its bundles before it starts
        self.max_concurrent = max_concurrent
        self.max_failures, self.fail_fast = max_failures, fail_fast
        self.callbacks, self.reporter, self.verbose = callbacks, reporter, verbose
        self.deadline = time.time() + time_budget_s if time_budget_s else None
        self.checkpoint_freq, self.checkpoint_at_end = checkpoint_freq, checkpoint_at_end
        self.reuse_actors = reuse_actors
        self.trial_name_creator, self.trial_dirname_creator = trial_name_creator, trial_dirname_creator
        self.rng = random.Random(seed)
        self.trials: list[Trial] = []
        self.iteration = 0
        self._exp_hex = uuid.uuid4().hex[:5]
        self._suggested = 0
        self._max_trials = searcher.total_samples() or num_samples  # grid x samples, if known
        self._search_done = False
        self._stop_all = False
        self._idle_hosts: list[Any] = []
        self._all_hosts: set[Any] = set()
        self._live: dict[str, Trial] = {}             # trial_id -> trial not yet ended
        self._running: dict[str, Any] = {}            # trial_id -> host
        self._inflight: dict[Any, tuple[str, Trial, Any]] = {}  # ref -> (kind, trial, host)
        self._searched_paths = [p for p, v in space_mod.flatten(space).items()
                                if space_mod.is_grid(v) or isinstance(v, space_mod.Domain)]
        self._trainable_ref = None
        self._last_state_save = 0.0
        self._first_error: BaseException | None = None
        self.journal = state_mod.Journal(experiment_dir)
        self.keeper = keeper or CheckpointKeeper(None)

    # ---- what schedulers may ask --------------------------------------------------------------
    def live_trials(self) -> list[Trial]:
        """The trials not yet ended (few: at most the running ones, one waiting, the paused)."""
        return list(self._live.values())

    def get_trials(self) -> list[Trial]:
        return list(self.trials)

    def search_finished(self) -> bool:
        """True once the searcher will create no more trials."""
        return self._search_done

    def stop_trial(self, trial: Trial) -> None:
        """End ``trial`` now (a scheduler's call, e.g. HyperBand dropping a paused trial)."""
        if trial.is_finished():
            return
        if trial.status == Trial.RUNNING:
            self._stop_trial(trial, trial.last_result)
        else:
            self._complete(trial, trial.last_result or None)

    def save_trial(self, trial: Trial) -> str | None:
        """A checkpoint of ``trial`` as it is now, for a scheduler to clone (PBT): a class
        trainable saves at once; a function trainable's is the last one it reported."""
        host = self._running.get(trial.trial_id)
        if not self.is_class or host is None or trial.status != Trial.RUNNING:
            return trial.checkpoint
        path = raylite.get(host.save.remote(trial.trial_id))
        if path:
            self._set_checkpoint(trial, path, trial.last_result)
        return path

    def restart_trial(self, trial: Trial, config: dict, checkpoint: str | None,
                      restore_point: tuple[int, float] = (0, 0.0), pause: bool = False) -> None:
        """Run ``trial`` again from a copy of ``checkpoint`` (another trial's, as PBT exploits)
        with a new ``config``: its current run ends without saving; it goes back to PENDING
        (or PAUSED, to wait its turn) and starts from the copy as if restored."""
        if trial.status == Trial.RUNNING:
            host = self._running.get(trial.trial_id)
            if host is not None:
                self._drop_inflight(trial)
                self._inflight[host.stop.remote(trial.trial_id, False)] = ("restart", trial, host)
        trial.set_status(Trial.PAUSED if pause else Trial.PENDING)
        trial.config = config
        for path_name in list(trial.evaluated_params):
            try:
                trial.evaluated_params[path_name] = space_mod.get_path(
                    config, tuple(path_name.split("/")))
            except (KeyError, IndexError, TypeError):
                pass
        if checkpoint:
            copy = clone_checkpoint(checkpoint, trial.logdir, restore_point[0])
            trial.checkpoint = copy
            trial.checkpoint_iteration, trial.checkpoint_time_s = restore_point
        self.journal.record("checkpoint", trial.to_state())

    # ---- the loop ---------------------------------------------------------------------------
    def run(self) -> list[Trial]:
        os.makedirs(self.experiment_dir, exist_ok=True)
        self.save_state()  # from here on, the experiment can be taken up again after a crash
        self._trainable_ref = raylite.put(pack_trainable(self.trainable))
        for callback in self.callbacks:
            callback.setup(experiment_dir=self.experiment_dir, name=self.name)
        try:
            while not self._finished():
                self._step()
        finally:
            self._shutdown()
        return self.trials

    def _finished(self) -> bool:
        if self._inflight:
            return False
        if self._stop_all:
            return True
        return self._search_done and not any(
            t.status in (Trial.PENDING, Trial.PAUSED) for t in self._live.values())

    def _step(self) -> None:
        self.iteration += 1
        for callback in self.callbacks:
            callback.on_step_begin(iteration=self.iteration, trials=self.trials)
        if not self._stop_all:
            self._create_trials()
            self._start_trials()
        if self._inflight:
            self._wait_and_handle()
        elif not self._finished():
            time.sleep(0.01)  # a searcher answered "not now" with nothing running: ask again
        self._check_experiment_stop()
        for callback in self.callbacks:
            callback.on_step_end(iteration=self.iteration, trials=self.trials)
        if self.reporter is not None and self.reporter.should_report(self.trials, False):
            self.reporter.report(self.trials, False, *self._sys_info())
        if time.time() - self._last_state_save > STATE_SAVE_INTERVAL_S:
            self.save_state()

    def _check_experiment_stop(self) -> None:
        if self._stop_all:
            return
        expired = self.deadline is not None and time.time() >= self.deadline
        if expired or (self.stopper is not None and self.stopper.stop_all()):
            self._stop_everything()

    # ---- creating and starting trials -------------------------------------------------------
    def _create_trials(self) -> None:
        """Ask the searcher for trials while there is room: one more than can run, so that
        searchers learn from as many results as possible; a scheduler that ranks a whole
        population (PBT) asks for up to MAX_EAGER_TRIALS waiting besides."""
        room = self.max_concurrent
        if getattr(self.scheduler, "eager_trials", False):
            room += MAX_EAGER_TRIALS
        while not self._search_done:
            active = sum(1 for t in self._live.values() if t.status in (Trial.PENDING, Trial.RUNNING))
            if active >= room:
                return
            if self._suggested >= self._max_trials:
                self._search_done = True
                return
            trial_id = f"{self._exp_hex}_{len(self.trials):05d}"
            suggestion = self.searcher.suggest(trial_id)
            if suggestion == Searcher.FINISHED:
                self._search_done = True
                return
            if suggestion is None:
                return
            self._suggested += 1
            self._add_trial(trial_id, suggestion)

    def _add_trial(self, trial_id: str, suggestion: dict) -> None:
        config = space_mod.merge_config(self.space, suggestion, self.rng)
        evaluated = {}
        for path in self._searched_paths:
            try:
                evaluated[space_mod.path_name(path)] = space_mod.get_path(config, path)
            except (KeyError, IndexError, TypeError):
                pass
        index = len(self.trials)
        tag = space_mod.trial_tag({(k,): v for k, v in evaluated.items()})
        tag = f"{index}_{tag}" if tag else str(index)
        trial = Trial(self.trainable_name, config, trial_id, tag, self.experiment_dir,
                      resources=self.resources, evaluated_params=evaluated)
        dirname = f"{trial}_{tag[:80]}_{timestamp_string()}"
        if self.trial_dirname_creator is not None:
            dirname = str(self.trial_dirname_creator(trial))
        trial.dirname = dirname
        trial.logdir = os.path.join(self.experiment_dir, dirname)
        if self.trial_name_creator is not None:
            trial.custom_name = str(self.trial_name_creator(trial))
        self.trials.append(trial)
        self._live[trial.trial_id] = trial
        self.scheduler.on_trial_add(self, trial)
        self.journal.record("add", trial.to_state())
        blob = state_mod.searcher_blob(self.searcher)
        if blob is not None:
            self.journal.record("searcher", blob)

    def _start_trials(self) -> None:
        reserving = self.groups.reserving if self.groups is not None else {}
        while len(self._running) + len(reserving) < self.max_concurrent:
            trial = self.scheduler.choose_trial_to_run(self)
            if trial is None or trial.status not in (Trial.PENDING, Trial.PAUSED):
                return
            if trial.trial_id in self._running or trial.trial_id in reserving:
                return  # a paused trial whose host has not let go yet, or one waiting for its group
            if self.groups is None:
                self._start(trial, self._host())
            else:  # it starts once its group is placed; trials wait for theirs in order
                ready = self.groups.reserve(trial.trial_id, trial.config)
                self._inflight[ready] = ("reserved", trial, None)

    def _reserved(self, trial: Trial) -> None:
        group, options = self.groups.placed(trial.trial_id)
        if self._stop_all or trial.status not in (Trial.PENDING, Trial.PAUSED):
            remove_group(group)  # ended while it waited
            return
        host = _host_class().options(max_concurrency=2, **options).remote(self._trainable_ref)
        self._all_hosts.add(host)
        self.groups.bind(host, group)
        self._start(trial, host)

    def _host(self) -> Any:
        if self._idle_hosts:
            return self._idle_hosts.pop()
        host = _host_class().options(max_concurrency=2, **self.actor_options).remote(
            self._trainable_ref)
        self._all_hosts.add(host)
        return host

    def _start(self, trial: Trial, host: Any) -> None:
        restoring = trial.checkpoint is not None or trial.num_results > 0
        trial.set_status(Trial.RUNNING)
        os.makedirs(trial.logdir, exist_ok=True)
        self._running[trial.trial_id] = host
        info = {"trial_id": trial.trial_id, "trial_name": str(trial), "logdir": trial.logdir,
                "config": trial.config, "resources": self.resources,
                "experiment_name": self.name, "checkpoint": trial.checkpoint,
                "iteration": trial.checkpoint_iteration if trial.checkpoint else 0,
                "time_total_s": trial.checkpoint_time_s if trial.checkpoint else 0.0,
                "checkpoint_freq": self.checkpoint_freq, "checkpoint_at_end": self.checkpoint_at_end}
        self._inflight[host.start.remote(info)] = ("results", trial, host)
        hook = "on_trial_restore" if restoring else "on_trial_start"
        for callback in self.callbacks:
            getattr(callback, hook)(iteration=self.iteration, trials=self.trials, trial=trial)

    # ---- waiting and handling replies ---------------------------------------------------------
    def _wait_and_handle(self) -> None:
        refs = list(self._inflight)
        timeout = 0.5 if (self.reporter is not None or self.deadline or self.stopper) else None
        if self.deadline is not None:
            timeout = max(0.0, min(timeout, self.deadline - time.time()))
        ready, rest = raylite.wait(refs, num_returns=1, timeout=timeout)
        if ready and rest:
            more, _ = raylite.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        for ref in ready:
            kind, trial, host = self._inflight.pop(ref)
            if kind == "reserved":
                self._reserved(trial)
                continue
            try:
                reply = raylite.get(ref)
            except Exception as exc:  # noqa: BLE001 - the host actor died or could not start
                self._host_failed(kind, trial, host, exc)
                continue
            if kind == "results":
                self._handle_results(trial, host, *reply)
            else:
                self._handle_stopped(kind, trial, host, *reply)

    def _handle_results(self, trial: Trial, host: Any, results: list, finished: bool,
                        error: str | None) -> None:
        last = len(results) - 1
        for i, (result, checkpoint) in enumerate(results):
            if checkpoint:
                self._set_checkpoint(trial, checkpoint, result)
            decision = self._process_result(trial, result)
            if checkpoint:
                self.journal.record("checkpoint", trial.to_state())
            if trial.status != Trial.RUNNING:
                return  # stopped, paused or restarted: the host was told; drop the rest
            if finished and i == last:
                break  # the trial ended on its own with this result
            if decision == TrialScheduler.STOP:
                self._stop_trial(trial, result)
                return
            if decision == TrialScheduler.PAUSE:
                self._pause_trial(trial, host)
                return
        if error is not None:
            self._release(trial, host)
            self._trial_failed(trial, error)
        elif finished:
            self._release(trial, host)
            if trial.last_result:
                trial.last_result["done"] = True
            self._complete(trial, trial.last_result or None)
        else:
            self._inflight[host.results.remote()] = ("results", trial, host)

    def _process_result(self, trial: Trial, result: dict) -> str:
        result["trial_id"] = trial.trial_id
        result.setdefault("done", False)
        self._check_metric(trial, result)
        trial.update_last_result(result)
        stop = False
        if self.stopper is not None:
            stop = self.stopper(trial.trial_id, result)
        for callback in self.callbacks:
            callback.on_trial_result(iteration=self.iteration, trials=self.trials, trial=trial,
                                     result=result)
        if self.verbose >= 3 and self.reporter is not None and not _is_live(self.reporter):
            print(result_line(trial, result), flush=True)
        self.searcher.on_trial_result(trial.trial_id, result)
        if stop or result.get("done"):
            return TrialScheduler.STOP  # the scheduler hears of it in on_trial_complete
        return self.scheduler.on_trial_result(self, trial, result)

    def _check_metric(self, trial: Trial, result: dict) -> None:
        if self.metric is None or self.metric in result:
            return
        if os.environ.get("TUNE_DISABLE_STRICT_METRIC_CHECKING") == "1":
            return
        reported = sorted(k for k in result if k not in AUTO_RESULT_KEYS)
        raise ValueError(
            f"trial {trial} reported a result without the metric {self.metric!r} that tune.run "
            f"expects (metric={self.metric!r}); it reported: {reported}. Report it with "
            f"tune.report({self.metric}=...), or pass the right metric name.")

    # ---- ending trials ----------------------------------------------------------------------
    def _release(self, trial: Trial, host: Any, reusable: bool = True) -> None:
        self._running.pop(trial.trial_id, None)
        if reusable and self.reuse_actors and not self._stop_all and self.groups is None:
            self._idle_hosts.append(host)
        else:
            self._kill(host)

    def _kill(self, host: Any) -> None:
        self._all_hosts.discard(host)
        try:
            raylite.kill(host)
        except Exception:  # noqa: BLE001, S110 - already gone
            pass
        if self.groups is not None:
            self.groups.release(host)  # and the trainer workers it started, if still alive

    def _stop_trial(self, trial: Trial, result: dict | None,
                    timeout: float = FUNCTION_STOP_TIMEOUT_S) -> None:
        host = self._running.get(trial.trial_id)
        if host is not None:
            self._drop_inflight(trial)
            stop = host.stop.remote(trial.trial_id, self.checkpoint_at_end, timeout)
            self._inflight[stop] = ("stop", trial, host)
        if result:
            result["done"] = True
        self._complete(trial, result or None)

    def _pause_trial(self, trial: Trial, host: Any) -> None:
        self._drop_inflight(trial)
        trial.set_status(Trial.PAUSED)
        saved = bool(trial.checkpoint) and trial.checkpoint_iteration == trial.last_result.get(
            "training_iteration")  # e.g. PBT just saved it: do not write it again
        self._inflight[host.stop.remote(trial.trial_id, not saved)] = ("pause", trial, host)

    def _drop_inflight(self, trial: Trial) -> None:
        """Forget ``trial``'s pending results (a reservation stays: it is cleaned up when its
        group is placed, or at the end)."""
        for ref, (kind, other, _) in list(self._inflight.items()):
            if other is trial and kind == "results":
                del self._inflight[ref]

    def _handle_stopped(self, kind: str, trial: Trial, host: Any, clean: bool,
                        checkpoint: str | None) -> None:
        """A host let go of ``trial``: stopped, paused (with a checkpoint saved) or restarted.
        A function trainable's own latest checkpoint may belong to results the driver dropped,
        so a paused function trial keeps the last checkpoint the driver saw instead."""
        keep = checkpoint and kind != "restart" and (kind == "stop" or self.is_class)
        if keep:
            self._set_checkpoint(trial, checkpoint, trial.last_result)
            self.journal.record("checkpoint", trial.to_state())
            for callback in self.callbacks:
                callback.on_checkpoint(iteration=self.iteration, trials=self.trials, trial=trial,
                                       checkpoint=checkpoint)
        self._release(trial, host, reusable=clean)

    def _set_checkpoint(self, trial: Trial, path: str, result: dict | None) -> None:
        """``path`` is now ``trial``'s checkpoint, taken after ``result``."""
        result = result or {}
        trial.checkpoint = path
        trial.checkpoint_iteration = int(result.get("training_iteration", 0) or 0)
        trial.checkpoint_time_s = float(result.get("time_total_s", 0.0) or 0.0)
        self.keeper.on_checkpoint(trial, path, result)

    def _complete(self, trial: Trial, result: dict | None) -> None:
        trial.set_status(Trial.TERMINATED)
        self._live.pop(trial.trial_id, None)
        self.journal.record("end", trial.to_state())
        self.searcher.on_trial_complete(trial.trial_id, result=result, error=False)
        self.scheduler.on_trial_complete(self, trial, result)
        for callback in self.callbacks:
            callback.on_trial_complete(iteration=self.iteration, trials=self.trials, trial=trial)
        if self.verbose >= 2 and self.reporter is not None and not _is_live(self.reporter):
            print(f"Trial {trial} completed.", flush=True)

    def _host_failed(self, kind: str, trial: Trial, host: Any, exc: BaseException) -> None:
        self._running.pop(trial.trial_id, None)
        self._all_hosts.discard(host)
        self._kill(host)
        if kind == "results" and trial.status == Trial.RUNNING:
            text = getattr(exc, "remote_traceback", "") or f"{type(exc).__name__}: {exc}"
            self._trial_failed(trial, f"the trial's actor failed: {text}")

    def _trial_failed(self, trial: Trial, error: str) -> None:
        self._running.pop(trial.trial_id, None)
        trial.num_failures += 1
        trial.error_msg = error.strip().splitlines()[-1] if error.strip() else "failed"
        write_error(trial, error)
        if trial.num_failures <= self.max_failures and not self._stop_all:
            trial.set_status(Trial.PENDING)  # retried from its last checkpoint, if any
            return
        trial.set_status(Trial.ERROR)
        self._live.pop(trial.trial_id, None)
        self.journal.record("end", trial.to_state())
        self.searcher.on_trial_complete(trial.trial_id, result=trial.last_result or None, error=True)
        self.scheduler.on_trial_error(self, trial)
        for callback in self.callbacks:
            callback.on_trial_error(iteration=self.iteration, trials=self.trials, trial=trial)
        if self.verbose >= 1 and self.reporter is not None and not _is_live(self.reporter):
            print(f"Trial {trial} errored: {trial.error_msg} (see {trial.error_file})", flush=True)
        if self.fail_fast:
            if self.fail_fast == "raise":
                self._first_error = TuneError(f"trial {trial} failed (fail_fast='raise'):\n{error}")
            self._stop_everything()

    def _stop_everything(self) -> None:
        self._stop_all = True
        for trial in list(self._live.values()):
            if trial.status == Trial.RUNNING:  # its host is killed after: no need to wait long
                self._stop_trial(trial, trial.last_result, timeout=0.1)
            elif trial.status in (Trial.PENDING, Trial.PAUSED):
                self._complete(trial, None)

    # ---- the end ----------------------------------------------------------------------------
    def _shutdown(self) -> None:
        for host in list(self._all_hosts):
            self._kill(host)
        if self.groups is not None:
            self.groups.close()
        self._idle_hosts.clear()
        self._inflight.clear()
        for callback in self.callbacks:
            callback.on_experiment_end(trials=self.trials)
        self.save_state()
        self.journal.close()
        if self.reporter is not None and self.verbose >= 1:
            self.reporter.report(self.trials, True, *self._sys_info())
        if self._first_error is not None:
            raise self._first_error

    def _sys_info(self) -> list[str]:
        used = len(self._running)
        cpus = self.resources.get("CPU", 0) * used
        total = raylite.cluster_resources().get("CPU", 0) if raylite.is_initialized() else 0
        return [self.scheduler.debug_string().splitlines()[0],
                f"Resources requested: {cpus:g}/{total:g} CPUs",
                f"Result logdir: {self.experiment_dir}"]

    def save_state(self) -> None:
        """Write the snapshot that resuming starts from (see ``_experiment_state``): the JSON
        and pickled experiment state and the searcher, all stamped with the journal position."""
        import cloudpickle
        self._last_state_save = time.time()
        trials = [t.to_state() for t in self.trials]
        state = {"name": self.name, "timestamp": time.time(), "metric": self.metric,
                 "mode": self.mode, "trials": trials, "exp_hex": self._exp_hex,
                 "suggested": self._suggested, "search_done": self._search_done,
                 "journal_seq": self.journal.seq}
        # the searcher first: a snapshot must never be newer than the searcher it goes with
        state_mod.save_searcher(self.searcher, self.experiment_dir, self.journal.seq)
        state_mod.write_atomic(os.path.join(self.experiment_dir, state_mod.STATE_JSON),
                               to_json(state).encode())
        try:
            blob = cloudpickle.dumps({**state, "space": self.space})
        except Exception:  # noqa: BLE001 - an unpicklable config: the JSON state still helps
            return
        if state_mod.write_atomic(os.path.join(self.experiment_dir, STATE_PICKLE), blob):
            self.journal.truncate()  # the snapshot now holds all the journal said

    def restore_state(self, state: dict, restart_errored: bool) -> None:
        """Take up an earlier run of this experiment: finished trials stay finished, the others
        start again (from their last checkpoint), the searcher goes on where it was, told of
        the trials that ended after it was last saved."""
        self._exp_hex, self._suggested = state["exp_hex"], state["suggested"]
        self._search_done = state["search_done"]
        self.journal.seq = state.get("journal_seq", 0)
        for entry in state["trials"]:
            trial = Trial.from_state(entry)
            trial.experiment_dir, trial.resources = self.experiment_dir, self.resources
            if trial.status in (Trial.RUNNING, Trial.PAUSED) or (
                    restart_errored and trial.status == Trial.ERROR):
                trial.status = Trial.PENDING
            self.trials.append(trial)
            if not trial.is_finished():
                self._live[trial.trial_id] = trial
                self.scheduler.on_trial_add(self, trial)
        seen = state_mod.restore_searcher(self.searcher, self.experiment_dir)
        if seen is None:
            return
        for _, kind, entry in state_mod.read_journal(self.experiment_dir, seen):
            if kind == "end":
                self.searcher.on_trial_complete(entry["trial_id"], result=entry["last_result"] or None,
                                                error=entry["status"] == Trial.ERROR)


def _is_live(reporter: ProgressReporter) -> bool:
    live = getattr(reporter, "live", None)
    return bool(live and live())


_HOST_CLASS = None


def _host_class():
    global _HOST_CLASS
    if _HOST_CLASS is None:
        _HOST_CLASS = raylite.remote(TrialHost)
    return _HOST_CLASS
