"""``runtime_env`` on a Dask cluster, through Dask's own worker plugins.

    init(address=..., runtime_env=env) ──install()──▶ client.register_plugin(...):
        env_vars               EnvVars (below): set in each worker's environment; restored
                               when the plugin is removed (at shutdown)
        working_dir            snapshot here (excludes honoured), zipped ─▶ UploadFile: the zip
                               is put on each worker's sys.path (its modules are imported)
        py_modules             the same, one zip per module
        pip                    PipInstall(packages, pip_install_options)

What differs from the local runtime, because Dask workers are shared processes that run many
tasks at once in threads:

- A runtime_env is the whole cluster's, set with ``init(runtime_env=...)``. A task or actor
  whose ``runtime_env`` would differ from it is refused with an error saying so (on the local
  runtime each env gets worker processes of its own).
- ``working_dir`` is on the workers' import path (as a zip: Dask's UploadFile), but it is not
  their current directory (a worker process's directory is shared by everything running in
  it), so its data files are not opened by relative path; ship data as task arguments.
- ``pip`` installs into the workers' own Python environment (Dask's PipInstall), not a
  separate virtual environment; the packages stay installed after the job. ``pip_check`` is
  not available.
- One runtime_env per cluster at a time: a driver that installs a different one replaces the
  previous job's, with a warning naming both.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Any

from raylite.core._runtime_env import env_key, merge
from raylite.exceptions import RuntimeEnvSetupError

PLUGIN_PREFIX = "raylite-runtime-env"
ENV_VARIABLE = "RAYLITE_RUNTIME_ENV"  # the installed env, as JSON, in every worker's environment

try:
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPlugin
except ImportError:  # the module is only imported with distributed present
    _WorkerPlugin = object


class EnvVars(_WorkerPlugin):
    """A worker plugin setting environment variables, restored at teardown."""

    def __init__(self, env_vars: dict[str, str]):
        self.env_vars = dict(env_vars)
        self.saved: dict[str, str | None] = {}

    def setup(self, worker: Any) -> None:
        self.saved = {name: os.environ.get(name) for name in self.env_vars}
        os.environ.update(self.env_vars)

    def teardown(self, worker: Any) -> None:
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def install(client: Any, env: dict) -> str:
    """Install ``env`` on the cluster's workers; returns the name to uninstall it by."""
    from distributed.diagnostics.plugin import PipInstall, UploadFile
    if (env.get("pip") or {}).get("pip_check"):
        raise ValueError("runtime_env['pip']['pip_check'] is not available on a Dask cluster "
                         "(Dask's PipInstall installs into the workers' Python); drop it")
    key = env_key(env)
    name = f"{PLUGIN_PREFIX}-{key}"
    _replace_other_envs(client, name)
    with tempfile.TemporaryDirectory(prefix="raylite-dask-env-") as staging:
        for index, archive in enumerate(_archives(env, key, staging)):
            client.register_plugin(UploadFile(archive), name=f"{name}-upload-{index}")
    if env.get("pip"):
        _pip_install(client, env["pip"], PipInstall, f"{name}-pip")
    env_vars = dict(env.get("env_vars") or {})
    env_vars[ENV_VARIABLE] = json.dumps(env, sort_keys=True)
    client.register_plugin(EnvVars(env_vars), name=name)
    return name


def _archives(env: dict, key: str, staging: str) -> list[str]:
    """working_dir and py_modules, snapshot here (excludes honoured), each as a .zip whose
    root is the folder to import from (UploadFile puts it on the workers' sys.path)."""
    import shutil
    from raylite.core._runtime_env_setup import snapshot
    excludes = env.get("excludes") or []
    folders = []
    if env.get("working_dir"):
        folders.append(snapshot(env["working_dir"], excludes, staging, "working_dir"))
    for module in env.get("py_modules") or []:
        folders.append(snapshot(module, excludes, staging, "py_modules"))
    return [shutil.make_archive(os.path.join(staging, f"raylite_{key}_{i}"), "zip", folder)
            for i, folder in enumerate(folders)]


def _pip_install(client: Any, pip: dict, plugin_class: type, name: str) -> None:
    print(f"raylite: runtime_env: installing pip packages {pip['packages']} on the Dask "
          "cluster (Dask's PipInstall)...", file=sys.stderr, flush=True)
    try:
        client.register_plugin(plugin_class(pip["packages"], pip["pip_install_options"]),
                               name=name)
    except Exception as exc:  # noqa: BLE001 - pip's output is in the message
        from raylite.core._runtime_env_setup import pip_failure
        raise RuntimeEnvSetupError(f"runtime_env on the Dask cluster: "
                                   f"{pip_failure(str(exc), pip['packages'])}") from None


def _replace_other_envs(client: Any, name: str) -> None:
    installed = client.run_on_scheduler(_installed_names)
    others = sorted({n.split("-upload-")[0].removesuffix("-pip") for n in installed} - {name})
    if others:
        print(f"raylite: warning: this Dask cluster ran another job's runtime_env "
              f"({', '.join(others)}); Dask workers are shared, so one cluster runs one "
              f"runtime_env at a time: it is replaced by this job's ({name}).",
              file=sys.stderr, flush=True)
        for other in installed:
            if not other.startswith(name):
                uninstall(client, other)


def _installed_names(dask_scheduler: Any) -> list[str]:
    return [n for n in dask_scheduler.worker_plugins if n.startswith(PLUGIN_PREFIX)]


def uninstall(client: Any, name: str) -> None:
    """Remove the env's plugins: its env_vars are restored; uploaded code stays on the
    workers' import path and pip installs stay installed (Dask has no undo for them)."""
    for plugin in client.run_on_scheduler(_installed_names):
        if plugin.startswith(name):
            try:
                client.unregister_worker_plugin(plugin)
            except Exception:  # noqa: BLE001 - already gone
                pass


def job_env_here() -> dict | None:
    """Inside a Dask worker: the runtime_env installed on the cluster (None for none)."""
    text = os.environ.get(ENV_VARIABLE)
    return json.loads(text) if text else None


def check_same_env(job_env: dict | None, options: dict, what: str) -> None:
    """Refuse a task's or actor's runtime_env that differs from the cluster's."""
    requested = options.get("runtime_env")
    if requested is None:
        return
    if env_key(merge(job_env, requested)) != env_key(job_env):
        raise ValueError(
            f"{what}: runtime_env={requested!r:.100} differs from the cluster's "
            f"({job_env or 'none'}), and on a Dask cluster a runtime_env is the whole "
            "cluster's (Dask workers are shared processes, so one task's env cannot be kept "
            "from another's): pass it to init(address=..., runtime_env=...) instead, or use "
            "the local runtime, which starts workers per env.")
