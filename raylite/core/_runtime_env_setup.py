"""Preparing a runtime env for workers: snapshots of folders, and cached pip virtual environments.

    normalized env ──prepare()──▶ {"key", "env": the normalized dict, "python", "cwd",
                                   "sys_path", "env_vars"}        (a plain, picklable dict)

- ``working_dir`` and ``py_modules`` are copied into ``<session>/runtime_resources/`` once per
  (path, excludes) and session: every process of the session finds the same copy by its name,
  and an edit of the original after the copy is made does not reach the job.
- ``pip`` builds ``~/.cache/raylite/runtime_envs/<hash>`` (``$XDG_CACHE_HOME`` honoured) once per
  distinct spec and Python, reused by later sessions. The venv sees this Python's packages, in
  this Python's order, after its own (a ``.pth`` naming this interpreter's site folders: more
  exact than ``--system-site-packages``, which would put the base interpreter's packages before
  those of the venv raylite runs in), so raylite and the user's libraries stay importable and
  pip installs only what is missing. A lock file keeps two processes from building one env at
  a time; the env is used only once its ``.raylite-ready`` marker exists, written last (a venv
  cannot be renamed after pip put scripts in it, so the marker is the atomic step: a half-built
  folder is removed and rebuilt).
- A failed pip install raises RuntimeEnvSetupError naming the requirement pip could not
  install, with pip's log kept next to the env.

Preparing happens in the process that submits the work, before the task is queued, and is
remembered per process by the env's key, so each env is prepared once per process.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

from raylite.core._runtime_env import DEFAULT_SETUP_TIMEOUT_S, env_key
from raylite.exceptions import RuntimeEnvSetupError

_prepared: dict[tuple, dict] = {}  # (session folder, env key) -> prepared
_lock = threading.Lock()
READY_MARKER = ".raylite-ready"
MAX_SNAPSHOT_BYTES = 500 << 20  # as Ray's limit on a working_dir or py_module


def prepare(env: dict | None, session_dir: str) -> dict | None:
    """What a worker of ``env`` needs (None for no env), made once per process."""
    if not env:
        return None
    key = env_key(env)
    done = _prepared.get((session_dir, key))
    if done is not None:
        return done
    with _lock:
        done = _prepared.get((session_dir, key))
        if done is None:
            done = _prepared[session_dir, key] = _prepare(env, key, session_dir)
    return done


def _prepare(env: dict, key: str, session_dir: str) -> dict:
    excludes = env.get("excludes") or []
    resources = os.path.join(session_dir, "runtime_resources")
    sys_path, cwd = [], None
    if env.get("working_dir"):
        cwd = snapshot(env["working_dir"], excludes, resources, "working_dir")
        sys_path.append(cwd)
    for module in env.get("py_modules") or []:
        sys_path.append(snapshot(module, excludes, resources, "py_modules"))
    python = None
    if env.get("pip"):
        timeout = (env.get("config") or {}).get("setup_timeout_seconds", DEFAULT_SETUP_TIMEOUT_S)
        python = pip_env(env["pip"], None if timeout == -1 else timeout)
    return {"key": key, "env": env, "python": python, "cwd": cwd, "sys_path": sys_path,
            "env_vars": dict(env.get("env_vars") or {})}


# ----- snapshots ------------------------------------------------------------------------------
def snapshot(path: str, excludes: list[str], resources: str, kind: str) -> str:
    """Copy a folder, file or zip into the session once; returns the folder to import from
    (for a working_dir: its copy; for a py_module: the folder holding it)."""
    name = f"{kind}_{env_key({'path': path, 'excludes': excludes})}"
    target = os.path.join(resources, name)
    if os.path.isdir(target):
        return target
    os.makedirs(resources, mode=0o700, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{name}-", dir=resources)
    try:
        _copy_into(path, excludes, staging, kind)
        try:
            os.rename(staging, target)  # atomic: another process may have won the race
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _copy_into(path: str, excludes: list[str], staging: str, kind: str) -> None:
    if path.endswith((".zip", ".whl")) and os.path.isfile(path):
        with zipfile.ZipFile(path) as archive:
            archive.extractall(staging)
        if kind == "working_dir":
            _unwrap_single_folder(staging)
        return
    if os.path.isfile(path):  # a single-file module
        shutil.copy2(path, os.path.join(staging, os.path.basename(path)))
        return
    destination = staging if kind == "working_dir" else os.path.join(staging, os.path.basename(path))
    matcher = ExcludeMatcher(list(excludes) + _gitignore(path))
    copied = [0]

    def copy(source: str, target: str) -> None:
        copied[0] += os.path.getsize(source)
        if copied[0] > MAX_SNAPSHOT_BYTES:
            raise ValueError(f"runtime_env[{kind!r}]={path!r} holds more than "
                             f"{MAX_SNAPSHOT_BYTES >> 20} MiB: leave large files out with "
                             "runtime_env['excludes'] (gitignore-style patterns, e.g. "
                             "['data/', '*.ckpt']) and pass data as task arguments or files.")
        shutil.copy2(source, target)

    shutil.copytree(path, destination, symlinks=True, dirs_exist_ok=True, copy_function=copy,
                    ignore=lambda folder, names: matcher.ignored(path, folder, names))


def _gitignore(folder: str) -> list[str]:
    """The folder's top-level .gitignore patterns, which Ray leaves out too (unless
    RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1)."""
    if os.environ.get("RAY_RUNTIME_ENV_IGNORE_GITIGNORE") == "1":
        return []
    try:
        with open(os.path.join(folder, ".gitignore")) as f:
            return [line.rstrip("\n") for line in f]
    except OSError:
        return []


def _unwrap_single_folder(folder: str) -> None:
    """A zip holding one top-level folder: its contents are the working dir (as in Ray)."""
    entries = [e for e in os.listdir(folder) if e != "__MACOSX"]
    if len(entries) == 1 and os.path.isdir(os.path.join(folder, entries[0])):
        inner = os.path.join(folder, entries[0])
        for entry in os.listdir(inner):
            os.rename(os.path.join(inner, entry), os.path.join(folder, entry))
        os.rmdir(inner)


class ExcludeMatcher:
    """gitignore-style patterns: ``*.log`` (any depth), ``/build`` (at the top only),
    ``data/`` (folders only), ``a/**/b``, ``!keep.log`` (include again)."""

    def __init__(self, patterns: list[str]):
        self.rules = []
        for raw in patterns:
            pattern = raw.strip()
            if not pattern or pattern.startswith("#"):
                continue
            negate = pattern.startswith("!")
            pattern = pattern[1:] if negate else pattern
            folders_only = pattern.endswith("/")
            pattern = pattern.rstrip("/")
            anchored = "/" in pattern
            pattern = pattern.lstrip("/")
            self.rules.append((negate, folders_only, anchored, pattern))

    def excluded(self, relative: str, is_dir: bool) -> bool:
        out = False
        name = relative.rsplit("/", 1)[-1]
        for negate, folders_only, anchored, pattern in self.rules:
            if folders_only and not is_dir:
                continue
            target = relative if anchored else name
            if fnmatch.fnmatchcase(target, pattern) or (
                    anchored and "**/" in pattern
                    and fnmatch.fnmatchcase(target, pattern.replace("**/", ""))):
                out = not negate
        return out

    def ignored(self, root: str, folder: str, names: list[str]) -> list[str]:
        if not self.rules:
            return []
        base = os.path.relpath(folder, root)
        base = "" if base == "." else base.replace(os.sep, "/") + "/"
        return [n for n in names
                if self.excluded(base + n, os.path.isdir(os.path.join(folder, n)))]


# ----- pip virtual environments ---------------------------------------------------------------
def cache_root() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "raylite", "runtime_envs")


def pip_env(pip: dict, timeout: float | None) -> str:
    """The python of the virtual environment for ``pip``, built on first use."""
    spec = {"pip": pip, "python": os.path.realpath(sys.executable), "version": sys.version}
    root = os.path.join(cache_root(), env_key(spec))
    python = os.path.join(root, "bin", "python")
    if os.path.exists(os.path.join(root, READY_MARKER)):
        return python
    os.makedirs(cache_root(), exist_ok=True)
    import fcntl
    with open(root + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process building it: wait for it, then reuse
        if not os.path.exists(os.path.join(root, READY_MARKER)):
            _build(root, pip, timeout)
    return python


def _build(root: str, pip: dict, timeout: float | None) -> None:
    packages = pip["packages"]
    started = time.monotonic()
    print(f"raylite: runtime_env: installing pip packages {packages} into {root} "
          "(first use; cached afterwards)...", file=sys.stderr, flush=True)
    shutil.rmtree(root, ignore_errors=True)  # a half-built one from a process that died
    log_path = root + ".log"
    try:
        import importlib.util
        has_pip = importlib.util.find_spec("pip") is not None  # else the venv gets its own
        _run(root, [sys.executable, "-m", "venv", *(["--without-pip"] if has_pip else []), root],
             log_path, timeout, packages)
        _see_this_pythons_packages(root)
        python = os.path.join(root, "bin", "python")
        requirements = os.path.join(root, "raylite-requirements.txt")  # as Ray: any pip syntax
        with open(requirements, "w") as f:
            f.write("\n".join(packages) + "\n")
        _run(root, [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                    *pip["pip_install_options"], "-r", requirements], log_path, timeout, packages)
        if pip.get("pip_check"):
            _run(root, [python, "-m", "pip", "check", "--disable-pip-version-check"],
                 log_path, timeout, packages)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    with open(os.path.join(root, READY_MARKER), "w") as f:
        f.write(f"{time.time()}\n")
    print(f"raylite: runtime_env: pip environment ready in {time.monotonic() - started:.1f} s.",
          file=sys.stderr, flush=True)


def _see_this_pythons_packages(root: str) -> None:
    """A .pth in the venv adding this interpreter's site folders (with their own .pth files,
    editable installs included) after the venv's own."""
    import site
    folders = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and site.getusersitepackages():
        folders.append(site.getusersitepackages())
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    target = os.path.join(root, "lib", version, "site-packages")
    os.makedirs(target, exist_ok=True)
    with open(os.path.join(target, "_raylite_parent.pth"), "w") as f:
        for folder in folders:
            f.write(f"import site; site.addsitedir({folder!r})\n")


def _run(root: str, command: list[str], log_path: str, timeout: float | None,
         packages: list[str]) -> None:
    try:
        result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True,
                                text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeEnvSetupError(
            f"runtime_env: installing {packages} took longer than {timeout} s and was stopped; "
            "raise runtime_env['config']['setup_timeout_seconds'] if it needs longer.") from None
    with open(log_path, "a") as log:
        log.write(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        raise RuntimeEnvSetupError(f"runtime_env: {pip_failure(result.stderr, packages)} "
                                   f"(pip's full output: {log_path}).")


_PIP_FAILURES = (
    (r"No matching distribution found for ([^\s]+)", "pip found no package {0!r} to install"),
    (r"Could not find a version that satisfies the requirement ([^\s]+)",
     "pip found no version of {0!r} to install"),
    (r"Invalid requirement: '?([^'\n]+)'?", "{0!r} is not a valid pip requirement"),
    (r"Directory '([^']+)' is not installable", "{0!r} is not an installable project "
                                                "(no pyproject.toml or setup.py)"),
    (r"(?:file|path) '?([^'\n]+?)'? does not exist", "{0!r} does not exist"),
    (r"Failed to build ([^\s]+)", "pip could not build {0!r}"),
)


def pip_failure(stderr: str, packages: list[str]) -> str:
    """One line naming what pip could not install, from its error output."""
    for pattern, message in _PIP_FAILURES:
        match = re.search(pattern, stderr)
        if match:
            found = match.group(1).rstrip(".")
            return f"could not install {packages}: " + message.format(found) + \
                (" (is the name right? pip had no index to search: PIP_NO_INDEX is set)"
                 if os.environ.get("PIP_NO_INDEX") and "distribution" in pattern else "")
    errors = [line for line in stderr.splitlines() if line.startswith("ERROR")]
    last = (errors or stderr.strip().splitlines() or ["pip failed"])[-1]
    return f"could not install {packages}: {last.strip()}"


def worker_process(prepared: dict | None, base_env: dict, sys_path: list[str]) -> tuple:
    """(python, environment variables, cwd, import path) for a worker of ``prepared``."""
    if prepared is None:
        return sys.executable, base_env, None, sys_path
    env = dict(base_env)
    env.update(prepared["env_vars"])
    root = _raylite_root()
    if root is not None:  # its cwd or python may not find raylite where the driver did
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return (prepared["python"] or sys.executable, env, prepared["cwd"],
            prepared["sys_path"] + [p for p in sys_path if p not in prepared["sys_path"]])


def _raylite_root() -> str | None:
    """The folder raylite is imported from, unless it is an installed package's."""
    import raylite
    root = os.path.dirname(os.path.dirname(os.path.abspath(raylite.__file__)))
    if os.path.basename(root) in ("site-packages", "dist-packages"):
        return None
    return root
