"""The dashboard in a real browser: headless Chromium renders the page after tasks, a failing
task, an actor, a Tune run (with an RLlib-style reward curve) and a Serve deployment, the
rendered DOM must show them all, and a screenshot goes to docs/dashboard.png.

Skipped, saying why, where no Chromium is installed (Debian: ``apt-get install chromium``; or
point $CHROMIUM at a binary).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

requests = pytest.importorskip("requests")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import raylite
import _support
from _support import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCREENSHOT = os.environ.get("RAYLITE_DASHBOARD_SCREENSHOT") or os.path.join(ROOT, "docs",
                                                                              "dashboard.png")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-proxy-server",
                  "--hide-scrollbars", "--window-size=1400,1900", "--virtual-time-budget=5000"]


def poll(condition, what: str, timeout_s: float = 30.0):
    return _support.poll(condition, what, timeout_s, interval_s=0.02,
                         ignore=(requests.ConnectionError, KeyError, StopIteration))


def chromium() -> str | None:
    candidates = [os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome",
                  "google-chrome-stable", "chrome"]
    for name in candidates:
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def run_chromium(binary: str, *args: str) -> str:
    with tempfile.TemporaryDirectory(prefix="raylite-chromium-") as profile:
        done = subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def browser():
    binary = chromium()
    if binary is None:
        pytest.skip("no Chromium binary found (apt-get install chromium, or set $CHROMIUM): "
                    "the browser test of the dashboard needs one")
    return binary


@pytest.fixture(scope="module")
def busy_runtime(tmp_path_factory, browser):
    """A runtime that ran tasks, a failing task, an actor, a Tune run and a Serve deployment."""
    from raylite import serve, tune
    patch = pytest.MonkeyPatch()
    patch.setenv("RAYLITE_RESULTS_DIR", str(tmp_path_factory.mktemp("results")))
    raylite.shutdown()
    ctx = raylite.init(num_cpus=2, dashboard_port=free_port())
    url = "http://" + ctx["webui_url"]
    http = requests.Session()
    http.trust_env = False

    @raylite.remote
    def square(x):
        return x * x

    @raylite.remote
    def parse_record(line):
        raise ValueError(f"cannot parse record {line!r}")

    @raylite.remote
    class Counter:
        def incr(self):
            return 1

    assert sum(raylite.get([square.remote(i) for i in range(30)])) == 8555
    failed = parse_record.remote("bad,row,7")
    with pytest.raises(ValueError):
        raylite.get(failed)
    counter = Counter.options(name="page-counter").remote()
    raylite.get(counter.incr.remote())

    def trainable(config):
        for step in range(1, 9):
            tune.report(mean_loss=config["lr"] / step + 0.1,
                        episode_reward_mean=-200 + 20 * step * config["lr"])

    tune.run(trainable, name="lr_sweep", metric="mean_loss", mode="min", verbose=0,
             config={"lr": tune.grid_search([0.5, 1.0, 2.0])})
    serve.start(http_options={"port": free_port()})

    @serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 0})
    def sentiment(request):
        return {"label": "positive"}

    sentiment.deploy()
    poll(lambda: any(d["healthy_replicas"] == 2 for d in
                     http.get(url + "/api/serve", timeout=10).json()["deployments"]),
         "the deployment's replicas in the API")
    poll(lambda: http.get(url + "/api/tasks", timeout=10).json()["failures"], "the failure")
    yield url
    del failed, counter
    serve.shutdown()
    raylite.shutdown()
    patch.undo()


def test_page_shows_the_runtime_tune_and_serve_and_saves_a_screenshot(browser, busy_runtime):
    dom = run_chromium(browser, "--dump-dom", busy_runtime + "/")
    assert 'data-polls="' in dom, "the page's script never completed a poll"
    expected = {
        "tasks by function": "square", "the failed task": "parse_record",
        "its traceback": "cannot parse record", "the actor": "page-counter",
        "the Tune experiment": "lr_sweep", "a finished trial": "TERMINATED",
        "the trial's parameter": "lr", "the plotted metric": "mean_loss",
        "the Serve deployment": "sentiment", "its healthy replicas": "2 / 2",
        "the RLlib reward curve": "episode_reward_mean", "the metric plot": "<polyline",
    }
    missing = {what: text for what, text in expected.items() if text not in dom}
    assert not missing, f"the rendered page does not show {missing}"
    assert "Traceback (most recent call last)" in dom
    assert 'id="meta">disconnected' not in dom and 'class="dot ok"' in dom

    os.makedirs(os.path.dirname(SCREENSHOT), exist_ok=True)
    before = os.path.getmtime(SCREENSHOT) if os.path.exists(SCREENSHOT) else None
    run_chromium(browser, f"--screenshot={SCREENSHOT}", busy_runtime + "/")
    with open(SCREENSHOT, "rb") as f:
        png = f.read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
    assert before is None or os.path.getmtime(SCREENSHOT) >= before
