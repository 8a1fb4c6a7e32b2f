"""The dashboard in a real browser: headless Chromium renders the page after tasks, a failing
task, an actor, a Tune run (with an RLlib-style reward curve) and Serve deployments, the
rendered DOM must show them all, and a screenshot goes to docs/dashboard.png. Then the parts a
user opens most, read from the rendered DOM: tasks under load (many waiting, two running, the
busy workers), a Tune experiment's curves (one per trial, every iteration), and the Serve
deployments (routes, replica health).

Skipped, saying why, where no Chromium is installed (Debian: ``apt-get install chromium``; or
point $CHROMIUM at a binary). CI installs it (``.ci/run``), so there it runs.
"""

from __future__ import annotations

import html
import os
import re
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

# Where the screenshot goes: a temporary file, so a test run leaves the tracked tree alone;
# RAYLITE_DASHBOARD_SCREENSHOT=docs/dashboard.png refreshes the README's picture.
SCREENSHOT = os.environ.get("RAYLITE_DASHBOARD_SCREENSHOT")
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

    @serve.deployment(route_prefix="/echo", ray_actor_options={"num_cpus": 0})
    class Echo:
        def __call__(self, request):
            return "echo"

    Echo.deploy()
    poll(lambda: sorted((d["name"], d["healthy_replicas"]) for d in
                        http.get(url + "/api/serve", timeout=10).json()["deployments"])
         == [("Echo", 1), ("sentiment", 2)], "both deployments' replicas in the API")
    poll(lambda: http.get(url + "/api/tasks", timeout=10).json()["failures"], "the failure")
    yield url
    del failed, counter
    serve.shutdown()
    raylite.shutdown()
    patch.undo()


def test_page_shows_the_runtime_tune_and_serve_and_saves_a_screenshot(browser, busy_runtime,
                                                                      tmp_path):
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

    screenshot = os.path.abspath(SCREENSHOT) if SCREENSHOT else str(tmp_path / "dashboard.png")
    os.makedirs(os.path.dirname(screenshot), exist_ok=True)
    if os.path.exists(screenshot):
        os.remove(screenshot)
    run_chromium(browser, f"--screenshot={screenshot}", busy_runtime + "/")
    with open(screenshot, "rb") as f:
        png = f.read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000


# ----- reading the rendered DOM -------------------------------------------------------------------
def section(dom: str, section_id: str) -> str:
    """The rendered HTML of ``<section id=section_id>`` (sections do not nest)."""
    match = re.search(rf'<section[^>]*id="{section_id}"[^>]*>(.*?)</section>', dom, re.S)
    assert match, f"the page has no section {section_id!r}"
    return match.group(1)


def table_rows(fragment: str) -> list[list[str]]:
    """The body rows of the first table in ``fragment``, as cell texts."""
    body = re.search(r"<tbody>(.*?)</tbody>", fragment, re.S)
    if body is None:
        return []
    return [[html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
             for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)]


def render(browser: str, url: str) -> str:
    dom = run_chromium(browser, "--dump-dom", url + "/")
    assert 'data-polls="' in dom, "the page's script never completed a poll"
    return dom


def test_tasks_under_load(browser, busy_runtime, tmp_path):
    """40 tasks on 2 CPUs, held until the test releases them: the page shows 2 running and 38
    waiting, both workers busy with the task, and then all 40 finished."""
    release = tmp_path / "release"

    @raylite.remote
    def crunch(i, release):
        import time as _time
        while not os.path.exists(release):  # held here until the test has looked
            _time.sleep(0.01)
        return i

    refs = [crunch.remote(i, str(release)) for i in range(40)]
    http = requests.Session()
    http.trust_env = False
    poll(lambda: http.get(busy_runtime + "/api/tasks", timeout=10).json()["by_state"]
         .get("RUNNING") == 2, "two crunch tasks running")
    dom = render(browser, busy_runtime)
    tasks = section(dom, "s-tasks")
    chips = dict(re.findall(r'class="chip (\w+)"><small>\w+</small><b>(\d+)</b>', tasks))
    assert chips.get("RUNNING") == "2", chips
    assert sum(int(chips.get(s, 0)) for s in ("WAITING", "READY")) == 38, chips
    live = table_rows(tasks.split('id="tasks-live"', 1)[1])
    assert len(live) >= 20 and {row[0] for row in live} == {"crunch"}, live[:3]
    assert sorted(row[1] for row in live).count("RUNNING") == 2
    workers = table_rows(section(dom, "s-workers"))
    assert sum(1 for row in workers if "crunch" in row[2]) == 2, workers
    release.touch()
    assert raylite.get(refs, timeout=60) == list(range(40))
    poll(lambda: any(row["name"] == "crunch" and row["finished"] == 40 for row in
                     http.get(busy_runtime + "/api/tasks", timeout=10).json()["by_name"]),
         "the 40 finished crunch tasks in the API")
    by_name = table_rows(section(render(browser, busy_runtime), "s-tasks"))
    assert ["crunch", "40", "0"] == next(row for row in by_name if row[0] == "crunch")[:3]


def test_a_tune_experiments_curves(browser, busy_runtime):
    """lr_sweep: three trials of eight iterations: the trial table, one curve per trial with a
    point per iteration, and the metrics to choose from."""
    tune_part = section(render(browser, busy_runtime), "s-tune")
    assert re.search(r'<option value="lr_sweep"[^>]*>lr_sweep \(3 terminated\)</option>', tune_part)
    metrics = re.findall(r'<option value="([^"]+)"', tune_part.split('id="tune-metric"', 1)[1])
    assert "mean_loss" in metrics and "episode_reward_mean" in metrics
    assert "3 trials" in tune_part and "metric mean_loss (min)" in tune_part
    trials = table_rows(tune_part)
    assert len(trials) == 3 and all(row[1] == "TERMINATED" for row in trials)
    assert sorted(row[2] for row in trials) == ["0.5", "1", "2"]  # the lr column
    assert all(row[3] == "8" for row in trials)  # iterations
    curves = re.findall(r'<polyline points="([^"]+)"', tune_part.split('id="tune-plot"', 1)[1])
    assert len(curves) == 3 and all(len(c.split()) == 8 for c in curves), curves
    last_y = sorted(float(c.split()[-1].split(",")[1]) for c in curves)
    assert last_y[0] < last_y[1] < last_y[2]  # three different final losses, drawn apart


def test_serve_deployments(browser, busy_runtime):
    serve_part = section(render(browser, busy_runtime), "s-serve")
    assert "HTTP proxy" in serve_part and "HEALTHY" in serve_part
    rows = {row[0]: row for row in table_rows(serve_part)}
    assert set(rows) == {"sentiment", "Echo"}, rows
    assert rows["sentiment"][4] == "2 / 2" and rows["Echo"][4] == "1 / 1"
    assert rows["Echo"][2] == "/echo" and rows["sentiment"][3] == "HEALTHY"
    assert "2 RUNNING" in rows["sentiment"][5]
