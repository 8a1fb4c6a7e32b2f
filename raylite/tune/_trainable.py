"""Trainables and the actor that hosts them.

A trainable is either a function ``f(config)`` that calls ``tune.report`` (run in a thread, so
its results stream out while it runs), or a :class:`Trainable` subclass whose ``step`` returns
one result per call. One :class:`TrialHost` actor runs one trial at a time and is reused for
the next trial when this one ends (no process start per trial):

    driver                                   TrialHost actor
    host.start(info) ----------------------> new TrialSession + thread running f(config);
                     <---------------------- its first results, as results() returns them
    host.results()   ----------------------> waits for >= 1 result or the end
                     <---------------------- ([(result, checkpoint path)...], finished, error)
    host.stop(id, save) -------------------> stop at the next report; join; maybe save
"""

from __future__ import annotations

import inspect
import os
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from raylite.tune import _session
from raylite.tune._session import Checkpoint, StopTrial, TrialSession

FUNCTION_STOP_TIMEOUT_S = 2.0


class Trainable:
    """A class trainable: ``setup(config)`` once, ``step()`` per iteration, optional checkpoints.

    Example:
        >>> class Counter(Trainable):
        ...     def setup(self, config):
        ...         self.count = config.get("start", 0)
        ...     def step(self):
        ...         self.count += 1
        ...         return {"count": self.count, "done": self.count >= 3}
        ...     def save_checkpoint(self, checkpoint_dir):
        ...         return {"count": self.count}
        ...     def load_checkpoint(self, checkpoint):
        ...         self.count = checkpoint["count"]
        >>> Counter({"start": 1}).train()["count"]
        2
    """

    def __init__(self, config: dict | None = None, logger_creator: Callable | None = None,
                 trial_info: dict | None = None):
        self.config = dict(config or {})
        self._begin_trial(trial_info or {})
        self.setup(dict(self.config))

    def _begin_trial(self, info: dict) -> None:
        """Take the identity and counters of the trial described by ``info``."""
        self._iteration = info.get("iteration", 0)
        self._restore_iteration = self._iteration
        self._time_total = info.get("time_total_s", 0.0)
        self._logdir = info.get("logdir") or os.getcwd()
        self._trial_id = info.get("trial_id", "default")
        self._trial_name = info.get("trial_name", "default")
        self._resources = info.get("resources", {})
        self._start = time.time()

    # ---- override these -------------------------------------------------------------------
    def setup(self, config: dict) -> None:
        """Build the model etc. from ``config`` (called once, from ``__init__``)."""

    def step(self) -> dict:
        """One iteration of training; return a dict of metrics (``"done": True`` to finish)."""
        raise NotImplementedError(f"{type(self).__name__} must define step() returning a dict")

    def save_checkpoint(self, checkpoint_dir: str) -> str | dict | None:
        """Save state into ``checkpoint_dir``; return it (or a path in it), or a dict to pickle."""
        return None

    def load_checkpoint(self, checkpoint: str | dict) -> None:
        """Restore what ``save_checkpoint`` saved (the path, or the dict it returned)."""

    def cleanup(self) -> None:
        """Release resources at the end of the trial."""

    def reset_config(self, new_config: dict) -> bool:
        """Make this instance run the next trial, with ``new_config``, without being rebuilt
        (the trial actor is reused; PBT restarts a trial with a new config). Return True when
        done; False (the default) has a fresh instance built instead. ``self.config`` is set
        to ``new_config`` afterwards; a checkpoint, if any, is loaded after."""
        return False

    # ---- the driver calls these -----------------------------------------------------------
    @property
    def iteration(self) -> int:
        return self._iteration

    training_iteration = iteration

    @property
    def logdir(self) -> str:
        return self._logdir

    @property
    def trial_id(self) -> str:
        return self._trial_id

    @property
    def trial_name(self) -> str:
        return self._trial_name

    @property
    def trial_resources(self) -> dict:
        return dict(self._resources)

    def train(self) -> dict:
        """Run one ``step`` and return its result with Tune's fields filled in."""
        begin = time.time()
        result = self.step()
        if not isinstance(result, dict):
            raise TypeError(f"{type(self).__name__}.step() must return a dict of metrics, got "
                            f"{type(result).__name__}")
        now = time.time()
        self._iteration += 1
        self._time_total += now - begin
        result = dict(result)
        result.setdefault("training_iteration", self._iteration)
        result.setdefault("time_this_iter_s", now - begin)
        result.setdefault("time_total_s", self._time_total)
        result.setdefault("time_since_restore", now - self._start)
        result.setdefault("iterations_since_restore", self._iteration - self._restore_iteration)
        result.setdefault("timestamp", int(now))
        result.setdefault("pid", os.getpid())
        return result

    def save(self, checkpoint_dir: str | None = None) -> str:
        """Save a checkpoint; returns its directory."""
        import pickle
        path = checkpoint_dir or os.path.join(self._logdir, f"checkpoint_{self._iteration:06d}")
        os.makedirs(path, exist_ok=True)
        saved = self.save_checkpoint(path)
        if isinstance(saved, dict):
            with open(os.path.join(path, Checkpoint._DICT_FILE), "wb") as f:
                pickle.dump(saved, f)
        with open(os.path.join(path, ".tune_metadata"), "w") as f:
            f.write(f"{self._iteration} {self._time_total}\n")
        return path

    def restore(self, checkpoint_path: str) -> None:
        """Load a checkpoint written by :meth:`save`."""
        meta = os.path.join(checkpoint_path, ".tune_metadata")
        if os.path.exists(meta):
            with open(meta) as f:
                text = f.read()
            try:
                iteration, total = text.split()
                self._iteration = self._restore_iteration = int(iteration)
                self._time_total = float(total)
            except ValueError as exc:
                from raylite.util._pickle_file import damaged
                raise damaged(meta, "checkpoint metadata", exc) from None
        dict_file = os.path.join(checkpoint_path, Checkpoint._DICT_FILE)
        if os.path.exists(dict_file):
            self.load_checkpoint(Checkpoint.from_directory(checkpoint_path).to_dict())
        else:
            self.load_checkpoint(checkpoint_path)

    def stop(self) -> None:
        self.cleanup()


def _stop_quietly(instance: Trainable) -> None:
    try:
        instance.stop()
    except Exception:  # noqa: BLE001, S110 - cleanup of a trial that is over
        pass


def is_class_trainable(trainable: Any) -> bool:
    return inspect.isclass(trainable) and issubclass(trainable, Trainable)


def trainable_name(trainable: Any) -> str:
    inner = getattr(trainable, "__raylite_trainable__", trainable)
    name = getattr(inner, "__name__", None) or type(inner).__name__
    return name if name != "<lambda>" else "lambda"


def check_trainable(trainable: Any) -> None:
    if is_class_trainable(trainable):
        return
    if inspect.isclass(trainable):
        raise TypeError(f"the trainable class {trainable.__name__} must subclass tune.Trainable "
                        "(define setup() and step())")
    if not callable(trainable):
        raise TypeError(f"trainable must be a function f(config), a tune.Trainable subclass or "
                        f"a registered name, got {type(trainable).__name__} {trainable!r:.60}")


def resolve_trainable(trainable: Any) -> Any:
    """The trainable itself: a name (``"PPO"``, or one given to ``tune.register_trainable``) is
    looked up; anything else is returned as it is."""
    if not isinstance(trainable, str):
        return trainable
    from raylite import _registry
    return _registry.resolve_trainable(trainable)


def default_resources(trainable: Any, config: dict) -> Any:
    """What a class trainable asks for by itself (``default_resource_request(config)``, as
    RLlib's algorithms define it), or None. The config's first grid point stands for all."""
    request = getattr(trainable, "default_resource_request", None)
    if not is_class_trainable(trainable) or request is None:
        return None
    try:
        return request(_first_variant(config or {}))
    except Exception:  # noqa: BLE001 - a request that needs the sampled values: the default
        return None


def _first_variant(value: Any) -> Any:
    """``value`` with each grid_search replaced by its first value and search domains left out."""
    from raylite.tune import _search_space as space_mod
    if space_mod.is_grid(value):
        return _first_variant(value["grid_search"][0])
    if isinstance(value, dict):
        return {key: _first_variant(item) for key, item in value.items()
                if not isinstance(item, space_mod.Domain)}
    return value


def _user_traceback() -> str:
    """The current exception's traceback, without the frames of this module at its top."""
    import sys
    exc = sys.exc_info()[1]
    tb = exc.__traceback__ if exc is not None else None
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__ and tb.tb_next is not None:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def pack_trainable(trainable: Any) -> tuple[Any, str | None, dict]:
    """(trainable, its source file, the registry): code pickled by value loses its file name,
    which the host puts back so that tracebacks point at the user's file and line; the envs
    and trainables registered in the driver are registered again in the host's process."""
    from raylite import _registry
    try:
        filename = inspect.getsourcefile(trainable)
    except (TypeError, OSError):
        filename = None
    return trainable, filename, _picklable(_registry.snapshot())


def _picklable(registered: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The registry without entries that cannot travel (they stay usable in the driver)."""
    import cloudpickle
    out: dict[str, dict[str, Any]] = {}
    for kind, entries in registered.items():
        out[kind] = {}
        for name, value in entries.items():
            try:
                cloudpickle.dumps(value)
            except Exception:  # noqa: BLE001, S112 - pickling raises many types
                continue
            out[kind][name] = value
    return out


def _restore_filenames(trainable: Any, filename: str | None) -> None:
    if not filename:
        return
    targets = [trainable]
    if inspect.isclass(trainable):
        targets = [getattr(v, "__func__", v) for v in vars(trainable).values()]
    for target in targets:
        code = getattr(target, "__code__", None)
        if code is not None and code.co_filename.startswith("<"):
            try:
                target.__code__ = _with_filename(code, filename)
            except (TypeError, ValueError):
                pass


def _with_filename(code: Any, filename: str) -> Any:
    consts = tuple(_with_filename(c, filename) if hasattr(c, "co_filename") else c
                   for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def _call_function(function: Callable, config: dict, session: TrialSession) -> Any:
    """Call a function trainable with the arguments its signature asks for."""
    try:
        params = inspect.signature(function).parameters
    except (TypeError, ValueError):
        params = {}
    if "checkpoint_dir" in params:
        return function(config, checkpoint_dir=session.checkpoint_path)
    if "reporter" in params:
        return function(config, reporter=lambda **kw: _session.report(kw))
    return function(config)


class TrialHost:
    """The actor that runs trials of one trainable, one at a time.

    It runs with two threads (``max_concurrency=2``) so that ``stop`` can reach a trial whose
    ``results`` call is still waiting; the driver never has more than that pair in flight.
    """

    def __init__(self, packed: tuple[Any, str | None, dict]):
        from raylite import _registry
        trainable, filename, registered = packed
        _registry.install(registered)
        _restore_filenames(trainable, filename)
        self._trainable = trainable
        self._is_class = is_class_trainable(trainable)
        self._started = threading.Condition()
        self._trial_id: str | None = None
        self._session: TrialSession | None = None
        self._thread: threading.Thread | None = None
        self._instance: Trainable | None = None
        self._class_error: str | None = None
        self._step_lock = threading.Lock()
        self._info: dict = {}
        self._spare: Trainable | None = None  # a finished class instance to reset_config

    def start(self, info: dict) -> tuple[list, bool, str | None]:
        """Begin the trial described by ``info`` (id, name, logdir, config, checkpoint, ...)
        and return its first results, as :meth:`results` does."""
        with self._started:
            self._info = info
            if self._is_class:
                self._start_class(info)
            else:
                self._session = TrialSession(info)
                self._thread = threading.Thread(target=self._run_function, args=(self._session,),
                                                daemon=True, name=f"trial-{info['trial_id']}")
                self._thread.start()
            self._trial_id = info["trial_id"]
            self._started.notify_all()
        return self.results()

    def _start_class(self, info: dict) -> None:
        self._instance, self._class_error = None, None
        spare, self._spare = self._spare, None
        try:
            if spare is not None and spare.reset_config(dict(info["config"])):
                spare.config = dict(info["config"])
                spare._begin_trial(info)
                self._instance = spare
            else:
                if spare is not None:
                    _stop_quietly(spare)
                self._instance = self._trainable(info["config"], trial_info=info)
            if info.get("checkpoint"):
                self._instance.restore(info["checkpoint"])
        except Exception:  # noqa: BLE001 - reported to the driver as the trial's error
            self._class_error = _user_traceback()

    def _retire(self, instance: Trainable) -> None:
        """A trial's instance is done: keep it for the next trial if it can be reset
        (overrides ``reset_config``), else stop it."""
        if type(instance).reset_config is not Trainable.reset_config:
            if self._spare is not None:
                _stop_quietly(self._spare)
            self._spare = instance
        else:
            _stop_quietly(instance)

    def _run_function(self, session: TrialSession) -> None:
        _session.activate(session)
        error = None
        try:
            output = _call_function(self._trainable, self._info["config"], session)
            if isinstance(output, dict) and output:
                session.report(output)
            elif isinstance(output, (int, float)) and not isinstance(output, bool):
                session.report({"_metric": output})
        except StopTrial:
            pass
        except BaseException:  # noqa: BLE001 - a trainable's crash is the trial's error
            error = _user_traceback()
        finally:
            session.finish(error)

    def results(self) -> tuple[list, bool, str | None]:
        """The results reported since the last call (waits for at least one, or the end):
        ``([(result, checkpoint path or None), ...], finished, error traceback or None)``."""
        if not self._is_class:
            return self._session.take()
        with self._step_lock:
            return self._class_step()

    def _class_step(self) -> tuple[list, bool, str | None]:
        if self._class_error or self._instance is None:
            return [], True, self._class_error
        try:
            result = self._instance.train()
        except Exception:  # noqa: BLE001 - reported to the driver as the trial's error
            return [], True, _user_traceback()
        path = None
        freq = self._info.get("checkpoint_freq") or 0
        if freq and self._instance.iteration % freq == 0:
            path = self._instance.save()
        finished = bool(result.get("done"))
        if finished and self._info.get("checkpoint_at_end") and path is None:
            path = self._instance.save()
        if finished:
            self._retire(self._instance)
            self._instance = None
        return [(result, path)], finished, None

    def save(self, trial_id: str) -> str | None:
        """Save the running class trial ``trial_id`` now (between steps); its checkpoint path."""
        with self._step_lock:
            if self._trial_id != trial_id or self._instance is None:
                return None
            return self._instance.save()

    def stop(self, trial_id: str, save: bool = False,
             timeout: float = FUNCTION_STOP_TIMEOUT_S) -> tuple[bool, str | None]:
        """End trial ``trial_id``, waiting up to ``timeout`` s for a function trainable to
        reach its next report. Returns (ended cleanly, checkpoint path if ``save``)."""
        with self._started:
            self._started.wait_for(lambda: self._trial_id == trial_id, FUNCTION_STOP_TIMEOUT_S)
        if self._is_class:
            with self._step_lock:  # let a running step finish first
                return True, self._stop_class(save)
        session, thread = self._session, self._thread
        if session is None:
            return True, None
        session.request_stop()
        if thread is not None:
            thread.join(timeout)
        clean = thread is None or not thread.is_alive()
        return clean, session.checkpoint_path if save else None

    def _stop_class(self, save: bool) -> str | None:
        instance, self._instance = self._instance, None
        if instance is None:
            return None
        path = instance.save() if save else None
        self._retire(instance)
        return path

    def ping(self) -> int:
        return os.getpid()


class PlacementGroupFactory:
    """Resources of one trial as bundles (Ray's API): each trial reserves them as one placement
    group before it starts; its actor takes the first bundle.

    Example:
        >>> PlacementGroupFactory([{"CPU": 1}, {"CPU": 2}]).required_resources
        {'CPU': 3.0}
    """

    def __init__(self, bundles: list[dict[str, float]], strategy: str = "PACK"):
        if not isinstance(bundles, list) or not bundles or not all(isinstance(b, dict) for b in bundles):
            raise ValueError(f"PlacementGroupFactory needs a non-empty list of resource dicts, "
                             f"got {bundles!r}")
        self.bundles = [dict(b) for b in bundles]
        self.strategy = strategy

    @property
    def required_resources(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for bundle in self.bundles:
            for key, value in bundle.items():
                total[key] = total.get(key, 0.0) + float(value)
        return total

    @property
    def head_bundle_is_empty(self) -> bool:
        """Whether the first bundle (the trial actor's) asks for nothing: the trial's group is
        then made of the other bundles, and the actor holds nothing inside it."""
        return not any(self.bundles[0].values())

    @property
    def head_cpus(self) -> float:
        return float(self.bundles[0].get("CPU", 0.0))

    def __repr__(self) -> str:
        return f"PlacementGroupFactory({self.bundles!r}, strategy={self.strategy!r})"


def with_parameters(trainable: Any, **kwargs: Any) -> Any:
    """Pass large objects to a trainable through the object store, once for all trials.

    Example:
        >>> from raylite import tune
        >>> def train(config, data=None):
        ...     tune.report(n=len(data))
        >>> wrapped = tune.with_parameters(train, data=list(range(1000)))  # doctest: +SKIP
    """
    import functools

    import raylite
    check_trainable(trainable)
    refs = {key: raylite.put(value) for key, value in kwargs.items()}
    if is_class_trainable(trainable):
        class WithParameters(trainable):  # type: ignore[misc, valid-type]
            def setup(self, config):
                values = {k: raylite.get(r) for k, r in refs.items()}
                return trainable.setup(self, config, **values)
        WithParameters.__name__ = trainable.__name__
        WithParameters.__qualname__ = trainable.__qualname__
        return WithParameters

    def inner(config, checkpoint_dir=None):
        values = {k: raylite.get(r) for k, r in refs.items()}
        try:
            params = inspect.signature(trainable).parameters
        except (TypeError, ValueError):
            params = {}
        if "checkpoint_dir" in params:
            values["checkpoint_dir"] = checkpoint_dir
        return trainable(config, **values)

    functools.update_wrapper(inner, trainable)
    del inner.__wrapped__  # keep inspect.signature on inner's own (config, checkpoint_dir)
    inner.__raylite_trainable__ = trainable
    return inner


def with_resources(trainable: Any, resources: Any) -> Any:
    """Give a trainable its resources: ``tune.with_resources(train, {"cpu": 2, "gpu": 1})``."""
    import functools
    check_trainable(trainable)
    if is_class_trainable(trainable):
        wrapped = type(trainable.__name__, (trainable,), {"__raylite_resources__": resources})
        return wrapped

    def inner(*args, **kwargs):
        return trainable(*args, **kwargs)

    functools.update_wrapper(inner, trainable)
    inner.__raylite_resources__ = resources
    inner.__raylite_trainable__ = getattr(trainable, "__raylite_trainable__", trainable)
    return inner
