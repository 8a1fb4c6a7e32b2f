"""``tune.run``: the experiment loop.

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
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import raylite
from raylite._suggest import did_you_mean
from raylite.exceptions import RayliteError
from raylite.tune import _experiment_state as state_mod
from raylite.tune import _search_space as space_mod
from raylite.tune._checkpoints import CheckpointKeeper, clone_checkpoint
from raylite.tune._experiment_state import STATE_PICKLE, load_state
from raylite._storage import (check_writable_root, is_remote, resolve,
                              upload_dir_or_clean)
from raylite.tune._logger import Callback, default_loggers, to_json, write_error
from raylite.tune._progress import AUTO_RESULT_KEYS, CLIReporter, ProgressReporter, result_line
from raylite.tune._resources import TrialGroups, concurrency_limit, remove_group, trial_actor_options
from raylite.tune._scheduler import FIFOScheduler, TrialScheduler, scheduler_from_name
from raylite.tune._searcher import (BasicVariantGenerator, Searcher, check_mode,
                                    searcher_from_name)
from raylite.tune._session import timestamp_string
from raylite.tune._stopper import Stopper, make_stopper
from raylite.tune._trainable import (FUNCTION_STOP_TIMEOUT_S, TrialHost, check_trainable,
                                     default_resources, is_class_trainable, pack_trainable,
                                     resolve_trainable, trainable_name)
from raylite.tune._trial import Trial

DEFAULT_RESULTS_DIR = "~/ray_results"
STATE_SAVE_INTERVAL_S = 5.0
RESUME_MODES = (False, True, "LOCAL", "AUTO", "ERRORED_ONLY")
MAX_EAGER_TRIALS = 16
__all__ = ["run", "TuneError", "ExperimentRunner", "STATE_PICKLE", "load_state", "results_root"]


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


# ------------------------------------------------------------------------------------------
# tune.run
# ------------------------------------------------------------------------------------------
def run(run_or_experiment: Any, name: str | None = None, metric: str | None = None,
        mode: str | None = None, stop: Any = None, time_budget_s: float | None = None,
        config: dict | None = None, resources_per_trial: Any = None, num_samples: int = 1,
        local_dir: str | None = None, storage_path: str | None = None,
        search_alg: Searcher | str | None = None, scheduler: TrialScheduler | str | None = None,
        checkpoint_freq: int = 0, checkpoint_at_end: bool = False, verbose: int = 3,
        progress_reporter: ProgressReporter | None = None, max_failures: int = 0,
        fail_fast: bool | str = False, reuse_actors: bool | None = None,
        raise_on_failed_trial: bool = True, callbacks: list[Callback] | None = None,
        max_concurrent_trials: int | None = None, trial_name_creator: Callable | None = None,
        trial_dirname_creator: Callable | None = None, seed: int | None = None,
        resume: bool | str = False, keep_checkpoints_num: int | None = None,
        checkpoint_score_attr: str | None = None, **unsupported: Any):
    """Run an experiment: ``num_samples`` x grid trials of ``run_or_experiment`` over ``config``.

    Args:
        run_or_experiment: a function ``f(config)`` that calls ``tune.report``, a
            ``tune.Trainable`` subclass, or the name of one (``tune.register_trainable``, or
            an RLlib algorithm such as ``"PPO"``).
        config: the search space: plain values, ``tune.grid_search([...])``, ``tune.uniform``...
        num_samples: samples of the space (each grid point is run this many times).
        metric, mode: the metric to optimize and "min"/"max"; used by searchers, schedulers
            and the ``best_*`` properties of the result.
        search_alg: a Searcher (OptunaSearch, HyperOptSearch, ...); default: grid/random.
        scheduler: a TrialScheduler (ASHAScheduler, MedianStoppingRule, ...); default: FIFO.
        stop: a dict ``{"training_iteration": 10}``, a function ``(trial_id, result) -> bool``
            or a ``tune.Stopper``.
        resources_per_trial: e.g. ``{"cpu": 1, "gpu": 0}`` (the default, or what a class
            trainable's ``default_resource_request(config)`` asks), or a
            ``tune.PlacementGroupFactory``: each trial reserves its bundles as one placement
            group before it starts; the trial's actor takes the first and captures its
            children (tasks, actors, a Train trainer's workers) into the group.
        local_dir / storage_path: where experiments go (default ``~/ray_results`` or
            $RAYLITE_RESULTS_DIR); ``name``: the experiment's directory name. A URI
            (``s3://bucket/prefix``, ``gs://...``) runs the experiment in the local results dir
            and copies it to ``<URI>/<name>`` when the run ends (its bucket is checked first).
        max_concurrent_trials: at most this many trials at once.
        max_failures: retries of a failing trial (from its last checkpoint).
        checkpoint_freq, checkpoint_at_end: when class trainables save.
        keep_checkpoints_num: keep only this many checkpoints per trial (the latest, and the
            best by ``checkpoint_score_attr``, e.g. "mean_accuracy" or "min-loss").
        raise_on_failed_trial: raise TuneError at the end if any trial failed.
        verbose: 0 silent, 1 the status table, 2 + trial ends, 3 + every result.
        callbacks: ``tune.Callback`` objects.
        resume: True to take up the experiment ``name`` where it stopped (its finished trials
            are kept, the others run again from their last checkpoint); "AUTO" to resume if
            there is something to resume, else start afresh; "ERRORED_ONLY" to also rerun the
            trials that failed.

    Returns:
        An :class:`ExperimentAnalysis`.

    Example:
        >>> from raylite import tune
        >>> def trainable(config):
        ...     tune.report(score=config["x"] ** 2)
        >>> analysis = tune.run(trainable, config={"x": tune.grid_search([1, 2])}, verbose=0)
        >>> analysis.get_best_config(metric="score", mode="min")
        {'x': 1}
    """
    from raylite.tune._analysis import ExperimentAnalysis
    loggers = _file_loggers(unsupported.pop("loggers", None))
    _reject_unsupported(unsupported)
    trainable = resolve_trainable(run_or_experiment)
    check_trainable(trainable)
    shown_name = run_or_experiment if isinstance(run_or_experiment, str) else trainable_name(trainable)
    check_mode(mode, "tune.run")
    if not isinstance(num_samples, int) or (num_samples < 1 and num_samples != -1):
        raise ValueError(f"num_samples must be an int >= 1, got {num_samples!r}")
    if num_samples == -1:
        num_samples = 2**62
    config = dict(config or {})
    space_mod.validate_space(config)
    resources = (getattr(trainable, "__raylite_resources__", None) or resources_per_trial
                 or default_resources(trainable, config))
    actor_options, shown = trial_actor_options(resources)
    # A PlacementGroupFactory (a trainer's: its own bundle + one per worker) is reserved per
    # trial, as one placement group, before the trial starts (see _resources.py)
    trial_groups = TrialGroups.for_trials(trainable, resources)
    keeper = CheckpointKeeper(keep_checkpoints_num, checkpoint_score_attr)
    searcher = _make_searcher(search_alg, metric, mode, config, num_samples)
    scheduler = _make_scheduler(scheduler, metric, mode)
    metric = metric or searcher.metric or scheduler.metric
    mode = mode or searcher.mode or scheduler.mode
    if resume not in RESUME_MODES:
        raise ValueError(f"resume must be one of {RESUME_MODES}, got {resume!r}")
    if resume and not name:
        raise ValueError("resume=... needs the name of the experiment to take up: "
                         "tune.run(..., name='my_experiment', resume=True)")
    if not raylite.is_initialized():  # before the storage: a memory:// one is the session's
        raylite.init()
    storage, remote = storage_path or local_dir, None
    if storage is not None and is_remote(storage):  # run in the local results dir, then copy
        remote = resolve(storage)
        check_writable_root(*remote, "tune.run(storage_path=...)")
        storage = None
    root = results_root(storage)
    name = name or _fresh_name(root, shown_name)
    experiment_dir = os.path.join(root, name)
    if not resume and os.path.exists(os.path.join(experiment_dir, STATE_PICKLE)):
        _warn_existing_experiment(experiment_dir)
    state = load_state(experiment_dir) if resume else None
    if resume and resume != "AUTO" and state is None:
        raise ValueError(f"nothing to resume in {experiment_dir}: no {STATE_PICKLE} there")
    if progress_reporter is None and verbose >= 1:
        progress_reporter = CLIReporter()
    if progress_reporter is not None:
        progress_reporter.setup(start_time=time.time(), total_samples=searcher.total_samples(),
                                metric=metric, mode=mode)
    runner = ExperimentRunner(
        trainable, config, searcher=searcher, scheduler=scheduler, stopper=make_stopper(stop),
        num_samples=num_samples, metric=metric, mode=mode, experiment_dir=experiment_dir,
        name=name, actor_options=actor_options, resources=shown,
        max_concurrent=concurrency_limit(shown, max_concurrent_trials),
        max_failures=max_failures, fail_fast=fail_fast,
        callbacks=loggers + list(callbacks or []),
        reporter=progress_reporter if verbose >= 1 else None, verbose=verbose,
        time_budget_s=time_budget_s, checkpoint_freq=checkpoint_freq,
        checkpoint_at_end=checkpoint_at_end,
        reuse_actors=True if reuse_actors is None else reuse_actors,
        trial_name_creator=trial_name_creator, trial_dirname_creator=trial_dirname_creator,
        seed=seed, keeper=keeper, trial_groups=trial_groups)
    runner.trainable_name = shown_name
    if state is not None:
        runner.restore_state(state, restart_errored=resume == "ERRORED_ONLY")
    try:
        trials = runner.run()
    finally:
        if remote is not None:
            upload_dir_or_clean(experiment_dir, remote[0], f"{remote[1].rstrip('/')}/{name}",
                                f"tune.run(storage_path={storage_path or local_dir!r})")
    failed = [t for t in trials if t.status == Trial.ERROR]
    if failed and raise_on_failed_trial:
        lines = "\n".join(f"  {t}: {t.error_msg} (error file: {t.error_file})" for t in failed)
        raise TuneError(f"{len(failed)} of {len(trials)} trials did not complete:\n{lines}")
    return ExperimentAnalysis(experiment_dir, trials=trials, default_metric=metric,
                              default_mode=mode)


def _file_loggers(loggers: Any) -> list[Callback]:
    """The default logger callbacks, or Ray 1.x ``loggers=[JsonLogger, ...]`` in their place."""
    if loggers is None:
        return default_loggers()
    from raylite.tune.logger import LegacyLoggerCallback
    return [LegacyLoggerCallback(loggers)]


_UNSUPPORTED_OK = {"sync_config", "log_to_file", "queue_trials", "server_port",
                   "export_formats", "max_pending_trials", "chdir_to_trial_dir"}


def _warn_existing_experiment(experiment_dir: str) -> None:
    """Said when a run reuses the name of an experiment on disk without ``resume``."""
    print(f"tune.run: warning: the experiment {os.path.basename(experiment_dir)!r} already "
          f"exists in {experiment_dir}; this run starts new trials beside its trial folders and "
          "replaces its experiment state. To take it up where it stopped, pass resume=True "
          "(or Tuner.restore(path, trainable)); to keep both, give this run another name.",
          file=sys.stderr, flush=True)


def _fresh_name(root: str, trainable: str) -> str:
    """``<trainable>_<date>``, with a suffix if another run this second took that name."""
    base = name = f"{trainable}_{timestamp_string()}"
    suffix = 1
    while os.path.exists(os.path.join(root, name)):
        suffix += 1
        name = f"{base}_{suffix}"
    return name


def _reject_unsupported(unsupported: dict) -> None:
    import inspect
    known = set(inspect.signature(run).parameters) | _UNSUPPORTED_OK | {"loggers"}
    for key in unsupported:
        if key not in _UNSUPPORTED_OK:
            raise TypeError(f"tune.run() got an unexpected keyword argument {key!r}"
                            f"{did_you_mean(key, known)}")


def _make_searcher(search_alg: Any, metric: str | None, mode: str | None, config: dict,
                   num_samples: int) -> Searcher:
    if search_alg is None:
        search_alg = BasicVariantGenerator()
    elif isinstance(search_alg, str):
        search_alg = searcher_from_name(search_alg)
    if not isinstance(search_alg, Searcher):
        raise TypeError(f"search_alg must be a tune Searcher (OptunaSearch, HyperOptSearch, ...), "
                        f"got {type(search_alg).__name__}")
    ok = search_alg.set_search_properties(metric, mode, config, num_samples=num_samples)
    if not ok:
        raise ValueError(f"{type(search_alg).__name__} already has a search space, and "
                         "tune.run(config=...) has one too; give the space in one place only")
    return search_alg


def _make_scheduler(scheduler: Any, metric: str | None, mode: str | None) -> TrialScheduler:
    if scheduler is None:
        scheduler = FIFOScheduler()
    elif isinstance(scheduler, str):
        scheduler = scheduler_from_name(scheduler)
    if not isinstance(scheduler, TrialScheduler):
        raise TypeError(f"scheduler must be a tune TrialScheduler (ASHAScheduler, ...), got "
                        f"{type(scheduler).__name__}")
    if not scheduler.set_search_properties(metric, mode):
        raise ValueError(f"tune.run(metric={metric!r}, mode={mode!r}) conflicts with the metric/"
                         f"mode of {type(scheduler).__name__} ({scheduler.metric!r}, "
                         f"{scheduler.mode!r}); pass them once")
    return scheduler
