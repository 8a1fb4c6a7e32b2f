"""Runtime environments: what a ``runtime_env`` may say, and how a child's combines with its parent's.

A ``runtime_env`` (a dict, or a :class:`RuntimeEnv`) travels through three steps::

    user's dict ──normalize()──▶ checked dict, absolute paths ──merge(parent, child)──▶ one env
         (at @remote / .options() / init,            (at submission: the job's or the
          so a bad value fails where it is written)   running task's env, then this one)
    one env ──prepare() (core/_runtime_env_setup.py)──▶ Prepared: the worker's python, cwd,
                                                        import path and environment variables

The keys raylite implements, with Ray's meaning:

- ``env_vars``: ``{str: str}`` set in the worker process's environment.
- ``working_dir``: a local folder or ``.zip``, copied once into the session (minus ``excludes``,
  gitignore-style patterns) and made the workers' current directory and first import path, so
  later edits of the folder do not reach running jobs.
- ``py_modules``: local folders, ``.py`` files, ``.zip``/``.whl`` files or imported modules,
  copied once into the session and put on the import path.
- ``pip``: requirement strings, a ``requirements.txt`` path, or
  ``{"packages": [...], "pip_check": bool, "pip_install_options": [...]}``: a virtual
  environment built once per distinct spec in ``~/.cache/raylite/runtime_envs`` and reused.
- ``excludes``: patterns left out of ``working_dir`` and ``py_modules`` folders.
- ``config``: ``{"setup_timeout_seconds": int, "eager_install": bool}``.

Inheritance, as in Ray: a task or actor without a ``runtime_env`` runs in its parent's (the job's
for the driver). One with a ``runtime_env`` starts from its parent's: every key it names
replaces the parent's, except ``env_vars``, which are merged (the child's win).
"""

from __future__ import annotations

import hashlib
import json
import os
import types
from typing import Any

from raylite._suggest import did_you_mean

KEYS = frozenset({"env_vars", "working_dir", "py_modules", "pip", "excludes", "config"})
# Ray's keys raylite does not implement, each with what to do instead.
REFUSED = {
    "conda": "conda environments are not implemented in raylite: use pip=[...] (a virtual "
             "environment is built and cached), or start raylite from the conda environment",
    "container": "containers are not implemented in raylite: run raylite inside the container",
    "image_uri": "container images are not implemented in raylite: run raylite inside the image",
    "uv": "uv environments are not implemented in raylite: use pip=[...] instead",
    "py_executable": "a worker interpreter of your choosing is not implemented in raylite: "
                     "use pip=[...] (its virtual environment's python runs the workers)",
    "worker_process_setup_hook": "worker setup hooks are not implemented in raylite: do the "
                                 "setup at the top of the task or in the actor's __init__",
    "java_jars": "raylite runs Python only",
    "nsight": "profilers are not attached by raylite",
    "rocprof_sys": "profilers are not attached by raylite",
    "mpi": "MPI runtime environments are not implemented in raylite",
}
CONFIG_KEYS = frozenset({"setup_timeout_seconds", "eager_install"})
PIP_KEYS = frozenset({"packages", "pip_check", "pip_version", "pip_install_options"})
_REMOTE_SCHEMES = ("s3://", "gs://", "gcs://", "https://", "http://", "file://", "hdfs://")
DEFAULT_SETUP_TIMEOUT_S = 600


class RuntimeEnvConfig(dict):
    """Ray's ``RuntimeEnvConfig``: ``setup_timeout_seconds`` (how long a pip install may take,
    600 by default) and ``eager_install`` (accepted; raylite prepares an env when it is first
    used, and the job's at ``init``)."""

    def __init__(self, setup_timeout_seconds: int = DEFAULT_SETUP_TIMEOUT_S,
                 eager_install: bool = True, **kwargs: Any):
        super().__init__(setup_timeout_seconds=setup_timeout_seconds,
                         eager_install=eager_install, **kwargs)
        _check_config(dict(self), "RuntimeEnvConfig")


class RuntimeEnv(dict):
    """A runtime environment for a job, task or actor; interchangeable with a plain dict.

    Example:
        >>> from raylite.runtime_env import RuntimeEnv
        >>> env = RuntimeEnv(env_vars={"MODE": "test"})
        >>> env["env_vars"]
        {'MODE': 'test'}
    """

    def __init__(self, *, py_modules: list | None = None, working_dir: str | None = None,
                 pip: Any = None, env_vars: dict[str, str] | None = None,
                 config: dict | None = None, _validate: bool = True, **kwargs: Any):
        given = {"py_modules": py_modules, "working_dir": working_dir, "pip": pip,
                 "env_vars": env_vars, "config": config, **kwargs}
        super().__init__({k: v for k, v in given.items() if v is not None})
        if _validate:
            normalize(dict(self), "RuntimeEnv(...)")

    def env_vars(self) -> dict[str, str]:
        return dict(self.get("env_vars") or {})

    def working_dir(self) -> str:
        return self.get("working_dir") or ""

    def py_modules(self) -> list:
        return list(self.get("py_modules") or [])

    def pip_config(self) -> dict:
        pip = self.get("pip")
        if not pip or isinstance(pip, str):
            return {}
        return {"packages": list(pip)} if isinstance(pip, list) else dict(pip)

    def to_dict(self) -> dict:
        return dict(self)


def normalize(runtime_env: Any, what: str) -> dict | None:
    """Check a user's ``runtime_env`` and return it as a plain dict with absolute local paths
    (None for an empty one). Raises ValueError/TypeError naming the key and the fix."""
    if runtime_env is None:
        return None
    if not isinstance(runtime_env, dict):
        raise TypeError(f"{what}: runtime_env must be a dict (or a RuntimeEnv), got "
                        f"{type(runtime_env).__name__}, e.g. runtime_env={{'env_vars': {{'X': '1'}}}}.")
    out: dict[str, Any] = {}
    for key, value in runtime_env.items():
        if key in REFUSED:
            if value in (None, {}, [], ""):
                continue
            raise ValueError(f"{what}: runtime_env[{key!r}] is not supported: {REFUSED[key]}.")
        if key not in KEYS:
            raise ValueError(f"{what}: unknown runtime_env key {key!r}"
                             f"{did_you_mean(key, KEYS) or '.'} raylite implements: "
                             f"{', '.join(sorted(KEYS))}.")
        if value is None:
            continue
        out[key] = _CHECKS[key](value, what)
    return out or None


def _check_env_vars(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise TypeError(f"{what}: runtime_env['env_vars'] must be a dict of str to str, got "
                        f"{type(value).__name__}.")
    for name, setting in value.items():
        if not isinstance(name, str) or not isinstance(setting, str):
            raise TypeError(f"{what}: runtime_env['env_vars'] must map str to str, got "
                            f"{name!r}: {setting!r}; write the value as a string, e.g. "
                            f"{str(name)!r}: {str(setting)!r}.")
    return dict(value)


def _local_path(value: Any, what: str, key: str) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise TypeError(f"{what}: runtime_env[{key!r}] must be a local path, got {value!r}.")
    if value.lower().startswith(_REMOTE_SCHEMES):
        raise ValueError(f"{what}: runtime_env[{key!r}]={value!r} is a remote URI, which raylite "
                         "does not download: download it and pass the local folder or .zip.")
    path = os.path.abspath(os.path.expanduser(value))
    if not os.path.exists(path):
        raise ValueError(f"{what}: runtime_env[{key!r}]={value!r} does not exist (looked at "
                         f"{path}); pass an existing local folder or .zip file.")
    return path


def _check_working_dir(value: Any, what: str) -> str:
    path = _local_path(value, what, "working_dir")
    if not os.path.isdir(path) and not path.endswith(".zip"):
        raise ValueError(f"{what}: runtime_env['working_dir']={value!r} must be a folder or a "
                         ".zip file.")
    return path


def _check_py_modules(value: Any, what: str) -> list[str]:
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{what}: runtime_env['py_modules'] must be a list of paths or "
                        f"modules, got {type(value).__name__}.")
    out = []
    for item in value:
        if isinstance(item, types.ModuleType):
            item = _module_path(item, what)
        path = _local_path(item, what, "py_modules")
        if not (os.path.isdir(path) or path.endswith((".py", ".zip", ".whl"))):
            raise ValueError(f"{what}: runtime_env['py_modules'] entry {item!r} must be a "
                             "folder, a .py, .zip or .whl file, or an imported module.")
        out.append(path)
    return out


def _module_path(module: types.ModuleType, what: str) -> str:
    file = getattr(module, "__file__", None)
    if not file:
        raise ValueError(f"{what}: runtime_env['py_modules'] got module {module.__name__!r}, "
                         "which has no file (a built-in or namespace module): pass its folder.")
    if os.path.basename(file) == "__init__.py":
        return os.path.dirname(file)
    return file


def _check_pip(value: Any, what: str) -> dict:
    """Ray's three forms, as one dict: {"packages": [...], "pip_check": bool, ...}."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str):
        path = os.path.abspath(os.path.expanduser(value))
        if not os.path.isfile(path):
            raise ValueError(f"{what}: runtime_env['pip']={value!r} is a string, so it must be a "
                             "requirements.txt file, and none is there; for a package write "
                             f"pip=[{value!r}].")
        with open(path) as f:
            lines = [line.split(" #")[0].strip() for line in f]
        value = {"packages": [line for line in lines if line and not line.startswith("#")]}
    elif isinstance(value, (list, tuple)):
        value = {"packages": list(value)}
    if not isinstance(value, dict):
        raise TypeError(f"{what}: runtime_env['pip'] must be a list of requirements, a "
                        f"requirements.txt path or a dict, got {type(value).__name__}.")
    _refuse_unknown_keys(value, PIP_KEYS, "pip", what)
    if value.get("pip_version"):
        raise ValueError(f"{what}: runtime_env['pip']['pip_version'] is not supported: raylite "
                         "installs with this Python's pip; drop pip_version.")
    packages = value.get("packages")
    if not isinstance(packages, (list, tuple)) or not all(
            isinstance(p, str) and p.strip() for p in packages):
        raise TypeError(f"{what}: runtime_env['pip']['packages'] must be a list of requirement "
                        f"strings like ['requests==2.31'], got {packages!r:.80}.")
    options = value.get("pip_install_options") or []
    if not isinstance(options, (list, tuple)) or not all(isinstance(o, str) for o in options):
        raise TypeError(f"{what}: runtime_env['pip']['pip_install_options'] must be a list of "
                        f"strings, got {options!r:.80}.")
    return {"packages": [p.strip() for p in packages], "pip_check": bool(value.get("pip_check")),
            "pip_install_options": list(options)}


def _check_excludes(value: Any, what: str) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(p, str) for p in value):
        raise TypeError(f"{what}: runtime_env['excludes'] must be a list of gitignore-style "
                        f"patterns like ['*.log', 'data/'], got {value!r:.80}.")
    return list(value)


def _check_config(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise TypeError(f"{what}: runtime_env['config'] must be a dict (or RuntimeEnvConfig), "
                        f"got {type(value).__name__}.")
    _refuse_unknown_keys(value, CONFIG_KEYS, "config", what)
    timeout = value.get("setup_timeout_seconds", DEFAULT_SETUP_TIMEOUT_S)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not (
            timeout > 0 or timeout == -1):
        raise ValueError(f"{what}: runtime_env['config']['setup_timeout_seconds'] must be a "
                         f"positive number of seconds (or -1: no limit), got {timeout!r}.")
    return dict(value)


def _refuse_unknown_keys(value: dict, known: frozenset, field: str, what: str) -> None:
    """ValueError naming the first key of ``runtime_env[field]`` that is not in ``known``."""
    for key in value:
        if key not in known:
            raise ValueError(f"{what}: unknown runtime_env[{field!r}] key {key!r}"
                             f"{did_you_mean(key, known) or '.'} Known: "
                             f"{', '.join(sorted(known))}.")


_CHECKS = {"env_vars": _check_env_vars, "working_dir": _check_working_dir,
           "py_modules": _check_py_modules, "pip": _check_pip, "excludes": _check_excludes,
           "config": _check_config}


def merge(parent: dict | None, child: dict | None) -> dict | None:
    """The env a child runs in (Ray's rule): the parent's, with each key the child names
    replacing the parent's, except ``env_vars``, where the child's are merged over the
    parent's."""
    if not child:
        return parent
    if not parent:
        return child
    merged = {**parent, **child}
    if "env_vars" in parent and "env_vars" in child:
        merged["env_vars"] = {**parent["env_vars"], **child["env_vars"]}
    return merged


def env_key(env: dict | None) -> str:
    """A stable name for a normalized env ("" for none): the same in every process."""
    if not env:
        return ""
    text = json.dumps(env, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
