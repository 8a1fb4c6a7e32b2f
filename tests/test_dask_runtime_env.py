"""runtime_env on the Dask backend: installed on the whole cluster through Dask's worker plugins
(env_vars, working_dir and py_modules uploaded, pip via PipInstall); a task's differing env is
refused by name, since Dask workers are shared processes."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("distributed")

from test_dask_backend import using_cluster  # noqa: E402


@pytest.fixture(scope="module")
def cluster(request):
    yield from using_cluster(request)


def _address(cluster) -> str:
    return "dask://" + cluster[0].split("://")[1]


def test_the_jobs_env_reaches_tasks_and_actors_on_the_cluster_and_is_removed_after(cluster, tmp_path):
    import raylite as ray
    project = tmp_path / "proj"
    project.mkdir()
    (project / "rt_dask_helper.py").write_text("WHERE = 'uploaded'\n")
    (project / "skip_me.py").write_text("raise RuntimeError('excluded file was shipped')\n")
    ray.shutdown()
    ray.init(address=_address(cluster), runtime_env={
        "env_vars": {"RT_DASK": "on"}, "working_dir": str(project), "excludes": ["skip_me.py"]})
    try:
        @ray.remote
        def read():
            import importlib.util
            import rt_dask_helper
            return (os.environ.get("RT_DASK"), rt_dask_helper.WHERE,
                    importlib.util.find_spec("skip_me") is None)

        @ray.remote
        class Reader:
            def read(self):
                return os.environ.get("RT_DASK")

        assert ray.get([read.remote() for _ in range(4)]) == [("on", "uploaded", True)] * 4
        assert ray.get(Reader.remote().read.remote()) == "on"

        @ray.remote
        def nested():  # in a worker: the cluster's env is known there too
            same = ray.get(read.options(runtime_env={"env_vars": {"RT_DASK": "on"}}).remote())
            try:
                read.options(runtime_env={"env_vars": {"RT_DASK": "off"}}).remote()
            except ValueError as exc:
                return same[0], "differs from the cluster's" in str(exc)
            return same[0], False
        assert ray.get(nested.remote()) == ("on", True)
        assert ray.get(read.options(runtime_env={"env_vars": {"RT_DASK": "on"}}).remote())[0] == "on"
        with pytest.raises(ValueError, match="differs from the cluster's.*Dask workers are shared"):
            read.options(runtime_env={"env_vars": {"RT_DASK": "other"}}).remote()
        with pytest.raises(ValueError, match="differs from the cluster's"):
            Reader.options(runtime_env={"env_vars": {"RT_OTHER": "1"}}).remote()
    finally:
        ray.shutdown()
    client = cluster[1]
    assert set(client.run(lambda: os.environ.get("RT_DASK")).values()) == {None}


def test_a_failed_pip_install_on_the_cluster_names_the_package(cluster, monkeypatch):
    import raylite as ray
    from raylite.exceptions import RuntimeEnvSetupError
    ray.shutdown()
    client = cluster[1]
    before = client.run(lambda: os.environ.get("PIP_NO_INDEX"))
    client.run(lambda: os.environ.__setitem__("PIP_NO_INDEX", "1"))
    client.run_on_scheduler(lambda: os.environ.__setitem__("PIP_NO_INDEX", "1"))
    try:
        with pytest.raises(RuntimeEnvSetupError, match="raylite-no-such-pkg-xyz"):
            ray.init(address=_address(cluster), runtime_env={"pip": ["raylite-no-such-pkg-xyz"]})
        assert not ray.is_initialized()
    finally:
        if not any(before.values()):
            client.run(lambda: os.environ.pop("PIP_NO_INDEX", None))
            client.run_on_scheduler(lambda: os.environ.pop("PIP_NO_INDEX", None))


def test_another_jobs_env_on_the_cluster_is_replaced_with_a_warning(cluster, capfd):
    import raylite as ray
    from raylite.core.dask._runtime_env import EnvVars
    client = cluster[1]
    ray.shutdown()
    client.register_plugin(EnvVars({"RT_OLD_JOB": "1"}), name="raylite-runtime-env-oldjob")
    assert set(client.run(lambda: os.environ.get("RT_OLD_JOB")).values()) == {"1"}
    ray.init(address=_address(cluster), runtime_env={"env_vars": {"RT_NEW_JOB": "1"}})
    try:
        err = capfd.readouterr().err
        assert "ran another job's runtime_env (raylite-runtime-env-oldjob)" in err
        assert "one cluster runs one runtime_env at a time" in err

        @ray.remote
        def read():
            return os.environ.get("RT_OLD_JOB"), os.environ.get("RT_NEW_JOB")
        assert ray.get(read.remote()) == (None, "1")
    finally:
        ray.shutdown()
