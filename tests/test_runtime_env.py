"""runtime_env: env_vars, working_dir, py_modules, pip, excludes; inheritance; worker reuse by env;
local mode; refusals. The pip tests build one virtual environment per session, offline."""

from __future__ import annotations

import os
import sys
import textwrap
import time
import zipfile

import pytest


@pytest.fixture(scope="module")
def ray():
    import raylite
    raylite.shutdown()
    raylite.init(num_cpus=2, include_dashboard=False)
    yield raylite
    raylite.shutdown()


def _env_reader(ray):
    @ray.remote
    def read(*names):
        return [os.environ.get(n) for n in names], os.getpid()
    return read


# ----- validation ---------------------------------------------------------------------------------
def test_bad_runtime_envs_are_refused_in_one_line_naming_the_fix(tmp_path):
    import raylite as ray

    @ray.remote
    def f():
        return 1

    cases = [
        ({"conda": "myenv"}, ValueError, "conda.*not supported.*pip"),
        ({"container": {"image": "x"}}, ValueError, "container.*not supported"),
        ({"image_uri": "docker.io/x"}, ValueError, "image_uri.*not supported"),
        ({"uv": ["requests"]}, ValueError, "uv.*not supported"),
        ({"env_var": {"A": "1"}}, ValueError, "unknown runtime_env key 'env_var'; did you mean 'env_vars'"),
        ({"env_vars": {"A": 1}}, TypeError, "must map str to str.*'A': '1'"),
        ({"env_vars": ["A=1"]}, TypeError, "env_vars.*dict of str to str"),
        ({"working_dir": str(tmp_path / "nope")}, ValueError, "does not exist"),
        ({"working_dir": "s3://bucket/code.zip"}, ValueError, "remote URI.*download it"),
        ({"py_modules": "mod"}, TypeError, "py_modules.*list"),
        ({"pip": "requests"}, ValueError, "requirements.txt.*pip=\\['requests'\\]"),
        ({"pip": {"packages": ["a"], "pip_chek": True}}, ValueError, "did you mean 'pip_check'"),
        ({"config": {"setup_timeout": 5}}, ValueError, "did you mean 'setup_timeout_seconds'"),
        ("env_vars", TypeError, "must be a dict"),
    ]
    for env, error, message in cases:
        with pytest.raises(error, match=message):
            f.options(runtime_env=env)
    with pytest.raises(ValueError, match="init\\(\\): runtime_env\\['conda'\\] is not supported"):
        ray.init(runtime_env={"conda": "x"}, include_dashboard=False)
    assert not ray.is_initialized()


def test_the_runtime_env_class_is_rays():
    import raylite as ray
    from raylite.runtime_env import RuntimeEnv, RuntimeEnvConfig
    env = RuntimeEnv(env_vars={"A": "1"}, config=RuntimeEnvConfig(setup_timeout_seconds=30))
    assert env == {"env_vars": {"A": "1"}, "config": {"setup_timeout_seconds": 30,
                                                       "eager_install": True}}
    assert env.env_vars() == {"A": "1"} and ray.runtime_env.RuntimeEnv is RuntimeEnv
    with pytest.raises(ValueError, match="conda"):
        RuntimeEnv(conda="x")


def test_pip_forms_merge_rule_and_exclude_patterns(tmp_path):
    from raylite.core._runtime_env import merge, normalize
    from raylite.core._runtime_env_setup import ExcludeMatcher
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# pinned\nrequests==2.31  # http\n\nnumpy\n")
    assert normalize({"pip": str(requirements)}, "t")["pip"]["packages"] == ["requests==2.31", "numpy"]
    assert normalize({"pip": ["a"]}, "t") == normalize({"pip": {"packages": ["a"]}}, "t")
    with pytest.raises(ValueError, match="pip_version.*not supported"):
        normalize({"pip": {"packages": ["a"], "pip_version": "==22.0"}}, "t")
    assert normalize({"env_vars": None, "conda": None}, "t") is None  # empty: no env at all
    parent = {"env_vars": {"A": "1", "B": "1"}, "pip": {"packages": ["x"]}, "excludes": ["*.log"]}
    child = {"env_vars": {"B": "2"}, "pip": {"packages": ["y"]}}
    assert merge(parent, child) == {"env_vars": {"A": "1", "B": "2"}, "pip": {"packages": ["y"]},
                                    "excludes": ["*.log"]}
    assert merge(parent, None) is parent and merge(None, child) is child
    matcher = ExcludeMatcher(["*.log", "!keep.log", "/top.txt", "data/", "a/**/b.txt"])
    expected = {("x.log", False): True, ("sub/x.log", False): True, ("keep.log", False): False,
                ("top.txt", False): True, ("sub/top.txt", False): False, ("data", True): True,
                ("data", False): False, ("a/b.txt", False): True, ("a/x/y/b.txt", False): True,
                ("main.py", False): False}
    assert {k: matcher.excluded(*k) for k in expected} == expected


# ----- env_vars, inheritance, worker reuse ----------------------------------------------------------
def test_env_vars_reach_a_task_and_an_actor_and_no_other_task(ray):
    read = _env_reader(ray)
    env = {"env_vars": {"RT_A": "a"}}
    assert ray.get(read.options(runtime_env=env).remote("RT_A"))[0] == ["a"]
    assert ray.get(read.remote("RT_A"))[0] == [None]

    @ray.remote
    class Reader:
        def read(self, name):
            return os.environ.get(name)

    actor = Reader.options(runtime_env={"env_vars": {"RT_A": "actor"}}).remote()
    assert ray.get(actor.read.remote("RT_A")) == "actor"
    assert ray.get(Reader.remote().read.remote("RT_A")) is None
    assert ray.get(ray.remote(runtime_env=env)(lambda: os.environ.get("RT_A")).remote()) == "a"


def test_workers_are_reused_only_by_tasks_of_the_same_env(ray):
    read = _env_reader(ray)
    env = {"env_vars": {"RT_REUSE": "1"}}
    _, first = ray.get(read.options(runtime_env=env).remote())
    _, second = ray.get(read.options(runtime_env=env).remote())
    assert first == second  # one worker of that env, reused
    plain = {ray.get(read.remote())[1] for _ in range(4)}
    assert first not in plain  # a task without the env never lands on it
    values, third = ray.get(read.options(runtime_env={"env_vars": {"RT_REUSE": "2"}}).remote("RT_REUSE"))
    assert values == ["2"] and third != first


def test_children_inherit_their_parents_env_and_merge_env_vars_over_it(ray, tmp_path):
    read = _env_reader(ray)
    module = tmp_path / "rt_inherited.py"
    module.write_text("X = 'inherited'\n")

    @ray.remote
    def importer():
        import rt_inherited
        return rt_inherited.X, os.environ.get("RT_C")

    @ray.remote
    def parent():
        inherited = ray.get(read.remote("RT_P", "RT_C"))[0]
        merged = ray.get(read.options(runtime_env={"env_vars": {"RT_C": "c", "RT_P": "p2"}})
                         .remote("RT_P", "RT_C"))[0]
        # keys the child does not name come from the parent (py_modules here)
        other = ray.get(importer.options(runtime_env={"env_vars": {"RT_C": "c"}}).remote())
        return inherited, merged, other, ray.get_runtime_context().runtime_env

    env = {"env_vars": {"RT_P": "p"}, "py_modules": [str(module)]}
    inherited, merged, other, seen = ray.get(parent.options(runtime_env=env).remote())
    assert inherited == ["p", None]
    assert merged == ["p2", "c"]
    assert other == ("inherited", "c")
    assert seen == env


# ----- working_dir and py_modules -----------------------------------------------------------------
def _project(tmp_path):
    project = tmp_path / "project"
    (project / "logs").mkdir(parents=True)
    (project / "helper.py").write_text("VERSION = 1\n")
    (project / "data.txt").write_text("one\n")
    (project / "secret.log").write_text("x\n")
    (project / "logs" / "run.txt").write_text("x\n")
    (project / ".gitignore").write_text("build/\n")
    (project / "build").mkdir()
    (project / "build" / "big.bin").write_text("x\n")
    return project


def test_working_dir_is_a_snapshot_and_the_workers_cwd_and_import_path(ray, tmp_path):
    project = _project(tmp_path)
    env = {"working_dir": str(project), "excludes": ["*.log", "logs/"]}

    @ray.remote(runtime_env=env)
    def look():
        import importlib
        import helper
        importlib.reload(helper)
        return (helper.VERSION, open("data.txt").read(), os.getcwd(), sorted(os.listdir(".")))

    version, data, cwd, names = ray.get(look.remote())
    assert (version, data) == (1, "one\n")
    # excludes and the folder's .gitignore honoured
    assert cwd != str(project) and names == [".gitignore", "data.txt", "helper.py"]
    (project / "helper.py").write_text("VERSION = 2\n")
    (project / "data.txt").write_text("two\n")
    version, data, cwd2, _ = ray.get(look.remote())
    assert (version, data, cwd2) == (1, "one\n", cwd)  # edits after the snapshot do not leak


def test_working_dir_from_a_zip_and_py_modules(ray, tmp_path):
    archive = tmp_path / "code.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("code/zipped_helper.py", "WHERE = 'zip'\n")
    package = tmp_path / "src" / "rt_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("NAME = 'rt_pkg'\n")
    single = tmp_path / "rt_single.py"
    single.write_text("NAME = 'single'\n")

    @ray.remote
    def imports():
        import rt_pkg
        import rt_single
        import zipped_helper
        return zipped_helper.WHERE, rt_pkg.NAME, rt_single.NAME

    env = {"working_dir": str(archive), "py_modules": [str(package), str(single)]}
    assert ray.get(imports.options(runtime_env=env).remote()) == ("zip", "rt_pkg", "single")
    with pytest.raises(ImportError):  # not on the path of a task without the env
        ray.get(imports.remote())


def test_an_imported_module_object_as_py_module(ray, tmp_path):
    package = tmp_path / "modobj" / "rt_modobj"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("X = 42\n")
    sys.path.insert(0, str(package.parent))
    try:
        import rt_modobj
    finally:
        sys.path.remove(str(package.parent))

    @ray.remote(runtime_env={"py_modules": [rt_modobj]})
    def use():
        import rt_modobj as module
        return module.X
    assert ray.get(use.remote()) == 42


# ----- pip ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def offline_package(tmp_path_factory, monkeypatch_module):
    """A tiny local project (pyproject + module) that pip installs by path with no index."""
    root = tmp_path_factory.mktemp("pkg") / "rt_tiny_pkg"
    (root / "rt_tiny_pkg").mkdir(parents=True)
    (root / "rt_tiny_pkg" / "__init__.py").write_text("ANSWER = 41 + 1\n")
    (root / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "rt-tiny-pkg"
        version = "0.1"
        [tool.setuptools]
        packages = ["rt_tiny_pkg"]
    """))
    monkeypatch_module.setenv("PIP_NO_INDEX", "1")
    monkeypatch_module.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    return root


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _pip_env(package) -> dict:
    return {"pip": {"packages": [str(package)],
                    "pip_install_options": ["--no-build-isolation"]}}


def test_pip_builds_a_cached_virtualenv_once_and_its_workers_import_from_it(
        ray, offline_package, capfd):
    @ray.remote
    def where():
        import rt_tiny_pkg
        import raylite  # the user's and raylite's packages stay importable
        return rt_tiny_pkg.ANSWER, sys.prefix, raylite.__name__

    started = time.monotonic()
    answer, prefix, _ = ray.get(where.options(runtime_env=_pip_env(offline_package)).remote())
    first = time.monotonic() - started
    assert answer == 42 and prefix != sys.prefix
    assert "installing pip packages" in capfd.readouterr().err
    ready = os.path.join(prefix, ".raylite-ready")
    built_at = os.stat(ready).st_mtime
    with pytest.raises(ImportError):
        ray.get(where.remote())  # default workers do not see it

    from raylite.core import _runtime_env_setup as setup
    setup._prepared.clear()  # forget this process's memory: the cache on disk is what is reused
    started = time.monotonic()
    assert ray.get(where.options(runtime_env=_pip_env(offline_package)).remote())[:2] == (42, prefix)
    assert os.stat(ready).st_mtime == built_at and "installing" not in capfd.readouterr().err
    assert time.monotonic() - started < first


def test_two_builders_of_one_env_take_turns_and_the_second_reuses_the_first(tmp_path, monkeypatch):
    import threading
    from raylite.core import _runtime_env_setup as setup
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    builds, entered, release = [], threading.Event(), threading.Event()

    def fake_build(root, pip, timeout):  # stands for venv + pip install, held until released
        builds.append(root)
        entered.set()
        release.wait(10)
        os.makedirs(root, exist_ok=True)
        open(os.path.join(root, setup.READY_MARKER), "w").close()

    monkeypatch.setattr(setup, "_build", fake_build)
    spec = {"packages": ["rt-lock-test"], "pip_check": False, "pip_install_options": []}
    pythons = []
    first = threading.Thread(target=lambda: pythons.append(setup.pip_env(spec, None)))
    second = threading.Thread(target=lambda: pythons.append(setup.pip_env(spec, None)))
    first.start()
    assert entered.wait(10)
    second.start()
    second.join(0.5)
    assert second.is_alive()  # waiting for the lock, not building a second copy
    release.set()
    first.join(10)
    second.join(10)
    assert len(builds) == 1 and len(pythons) == 2 and pythons[0] == pythons[1]


def test_a_failed_pip_install_names_the_package_fast(ray, offline_package):
    from raylite.exceptions import RuntimeEnvSetupError

    @ray.remote(runtime_env={"pip": ["raylite-no-such-pkg-xyz"]})
    def never():
        return 1

    started = time.monotonic()
    with pytest.raises(RuntimeEnvSetupError, match="raylite-no-such-pkg-xyz"):
        ray.get(never.remote())
    assert time.monotonic() - started < 30


# ----- Serve: ray_actor_options={"runtime_env": ...} ---------------------------------------------------
def test_a_serve_deployment_runs_in_its_runtime_env(ray):
    from raylite import serve
    from _support import free_port

    @serve.deployment(ray_actor_options={"num_cpus": 0.5,
                                         "runtime_env": {"env_vars": {"RT_SERVE": "replica"}}})
    class Model:
        def __call__(self, name):
            return os.environ.get(name)

    with pytest.raises(ValueError, match="conda.*not supported"):
        serve.deployment(ray_actor_options={"runtime_env": {"conda": "x"}})(lambda: None)
    serve.start(detached=False, http_options={"port": free_port()})
    try:
        handle = serve.run(Model.bind(), name="rt", route_prefix=None)
        assert handle.remote("RT_SERVE").result(timeout_s=30) == "replica"
    finally:
        serve.shutdown()


def test_an_env_whose_workers_cannot_start_fails_its_tasks_instead_of_retrying_forever(ray, tmp_path):
    from raylite.exceptions import RuntimeEnvSetupError
    project = tmp_path / "shadowing"
    project.mkdir()
    (project / "socket.py").write_text("raise ImportError('this socket.py shadows the stdlib')\n")

    @ray.remote(runtime_env={"working_dir": str(project)})
    def never():
        return 1

    with pytest.raises(RuntimeEnvSetupError, match="exited before it started, 3 times"):
        ray.get(never.remote(), timeout=60)
    read = _env_reader(ray)
    assert ray.get(read.remote("X"))[0] == [None]  # the runtime itself carries on


# ----- tests with a runtime of their own (after the module's runtime is done) ---------------
def test_inits_runtime_env_is_the_jobs_default_and_tasks_merge_over_it(tmp_path):
    import raylite as ray
    ray.shutdown()
    ray.init(num_cpus=1, include_dashboard=False,
             runtime_env={"env_vars": {"RT_JOB": "job", "RT_X": "x"}})
    try:
        read = _env_reader(ray)
        assert ray.get(read.remote("RT_JOB", "RT_X"))[0] == ["job", "x"]
        assert ray.get(read.options(runtime_env={"env_vars": {"RT_X": "y"}})
                       .remote("RT_JOB", "RT_X"))[0] == ["job", "y"]

        @ray.remote
        class Trial:  # what Tune's trials and Train's workers are: actors, inheriting it
            def read(self):
                return os.environ.get("RT_JOB")
        assert ray.get(Trial.remote().read.remote()) == "job"
        assert "RT_JOB" not in os.environ  # the driver's own environment is left alone
    finally:
        ray.shutdown()


def test_init_with_an_env_that_cannot_be_built_fails_and_leaves_nothing_running(offline_package):
    import glob
    import tempfile
    import raylite as ray
    from raylite.exceptions import RuntimeEnvSetupError
    ray.shutdown()
    pattern = os.path.join(tempfile.gettempdir(), f"raylite-session-{os.getpid()}-*")
    before = set(glob.glob(pattern))
    with pytest.raises(RuntimeEnvSetupError, match="raylite-no-such-pkg-xyz"):
        ray.init(num_cpus=1, include_dashboard=False,
                 runtime_env={"pip": ["raylite-no-such-pkg-xyz"]})
    assert not ray.is_initialized() and set(glob.glob(pattern)) == before


def test_local_mode_applies_env_vars_and_paths_around_the_call_and_refuses_pip(tmp_path):
    import raylite as ray
    ray.shutdown()
    project = _project(tmp_path)
    ray.init(local_mode=True, runtime_env={"env_vars": {"RT_LOCAL": "job"}})
    try:
        @ray.remote
        def read():
            import helper
            return os.environ.get("RT_LOCAL"), helper.VERSION

        assert "RT_LOCAL" not in os.environ
        env = {"working_dir": str(project), "env_vars": {"RT_LOCAL": "task"}}
        assert ray.get(read.options(runtime_env=env).remote()) == ("task", 1)
        assert "RT_LOCAL" not in os.environ and str(project) not in sys.path
        with pytest.raises(ValueError, match="pip.*not supported in local mode"):
            read.options(runtime_env={"pip": ["x"]}).remote()
    finally:
        sys.modules.pop("helper", None)
        ray.shutdown()


# ----- Tune and Train: trials and training workers inherit the job's env ---------------------------
def _report_env(config):
    from raylite import tune
    tune.report(seen=os.environ.get("RT_JOB"))


def _train_loop(config):
    from raylite import train
    train.report({"seen": os.environ.get("RT_JOB"), "rank": train.get_context().get_world_rank()})


def test_tune_trials_and_train_workers_inherit_the_jobs_env(tmp_path):
    import raylite as ray
    from raylite import tune
    from raylite.train import DataParallelTrainer, RunConfig, ScalingConfig
    ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"RT_JOB": "job"}})
    try:
        analysis = tune.run(_report_env, storage_path=str(tmp_path / "tune"), verbose=0,
                            num_samples=2)
        assert [t.last_result["seen"] for t in analysis.trials] == ["job", "job"]
        result = DataParallelTrainer(
            _train_loop, backend_config="tensorflow", scaling_config=ScalingConfig(num_workers=2),
            run_config=RunConfig(storage_path=str(tmp_path / "train"))).fit()
        assert result.metrics["seen"] == "job"
        # Ray 2.x's RunConfig(worker_runtime_env=...): the workers' env, merged over the job's
        result = DataParallelTrainer(
            _train_loop, backend_config="tensorflow", scaling_config=ScalingConfig(num_workers=2),
            run_config=RunConfig(storage_path=str(tmp_path / "train2"),
                                 worker_runtime_env={"env_vars": {"RT_JOB": "workers"}})).fit()
        assert result.metrics["seen"] == "workers"
        with pytest.raises(ValueError, match="RunConfig: runtime_env\\['conda'\\]"):
            RunConfig(worker_runtime_env={"conda": "x"})
    finally:
        ray.shutdown()
