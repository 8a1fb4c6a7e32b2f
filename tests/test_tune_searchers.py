"""Search spaces, and one contract suite run on every searcher plugin."""

import itertools
import math
import random

import pytest

from raylite import tune
from raylite.tune import _search_space as space_mod
from raylite.tune.search import BasicVariantGenerator, ConcurrencyLimiter, Repeater, Searcher

SPACE = {
    "lr": tune.loguniform(1e-4, 1e-1),
    "momentum": tune.uniform(0.1, 0.9),
    "dropout": tune.quniform(0.0, 0.5, 0.1),
    "layers": tune.randint(1, 5),
    "width": tune.qrandint(16, 128, 16),
    "act": tune.choice(["relu", "tanh"]),
    "net": {"decay": tune.qloguniform(1e-3, 1.0, 1e-3)},
    "epochs": 3,
}


def check_in_space(config):
    assert 1e-4 <= config["lr"] <= 1e-1
    assert 0.1 <= config["momentum"] <= 0.9
    assert 0.0 <= config["dropout"] <= 0.5 and abs(config["dropout"] * 10 - round(config["dropout"] * 10)) < 1e-9
    assert config["layers"] in (1, 2, 3, 4)
    assert config["width"] in range(16, 129, 16)
    assert config["act"] in ("relu", "tanh")
    assert 1e-3 <= config["net"]["decay"] <= 1.0
    assert config["epochs"] == 3


# ---- the search space --------------------------------------------------------------------
def test_domains_sample_within_bounds():
    rng = random.Random(0)
    space = {**SPACE, "noise": tune.randn(5, 0.1), "q": tune.qrandn(0, 1, 0.5),
             "lg": tune.lograndint(1, 1000), "qlg": tune.qlograndint(10, 1000, 10)}
    for _ in range(200):
        ((_, config),) = list(space_mod.generate_variants(space, rng))
        check_in_space(config)
        assert 4 < config["noise"] < 6 and (config["q"] * 2) == int(config["q"] * 2)
        assert 1 <= config["lg"] < 1000 and config["qlg"] % 10 == 0 and 10 <= config["qlg"] <= 1000


def test_grid_search_order_and_count():
    space = {"x": tune.grid_search([1, 2, 3]), "y": {"z": tune.grid_search(["a", "b"])}, "c": 0}
    configs = [c for _, c in space_mod.generate_variants(space, random.Random(0))]
    assert [(c["x"], c["y"]["z"]) for c in configs] == [
        (1, "a"), (2, "a"), (3, "a"), (1, "b"), (2, "b"), (3, "b")]  # first key fastest, as Ray
    assert all(c["c"] == 0 for c in configs)
    assert space_mod.count_grid(space) == 6


def test_sample_from_reads_other_values():
    space = {"a": tune.choice([2, 4]), "b": tune.sample_from(lambda spec: spec.config.a * 10),
             "c": tune.sample_from(lambda spec: spec["config"]["b"] + 1)}
    for _ in range(10):
        ((_, config),) = list(space_mod.generate_variants(space, random.Random()))
        assert config["b"] == config["a"] * 10 and config["c"] == config["b"] + 1


def test_lists_and_nested_dicts_in_a_space():
    space = {"layers": [{"units": tune.grid_search([8, 16])}, {"units": 4}],
             "opt": {"name": "sgd", "lr": tune.uniform(0, 1)}}
    configs = [c for _, c in space_mod.generate_variants(space, random.Random(1))]
    assert [c["layers"][0]["units"] for c in configs] == [8, 16]
    assert all(c["layers"][1] == {"units": 4} and 0 <= c["opt"]["lr"] <= 1 for c in configs)


@pytest.mark.parametrize("space, key, words", [
    ({"lr": tune.loguniform(0, 1)}, "lr", "lower > 0"),
    ({"a": {"b": tune.uniform(2, 1)}}, "a/b", "lower < upper"),
    ({"n": tune.randint(1.5, 3)}, "n", "int bounds"),
    ({"c": tune.choice([])}, "c", "at least one"),
    ({"g": tune.grid_search(5)}, "g", "list of values"),
    ({"q": tune.quniform(0, 1, 0)}, "q", "q > 0"),
    ({"s": tune.sample_from(3)}, "s", "callable"),
])
def test_invalid_space_error_names_the_key(space, key, words):
    with pytest.raises(ValueError) as info:
        space_mod.validate_space(space)
    assert f"'{key}'" in str(info.value) and words in str(info.value)


def test_space_must_be_a_dict():
    with pytest.raises(TypeError, match="must be a dict"):
        space_mod.validate_space([1, 2])


# ---- the searcher contract ---------------------------------------------------------------
class RandomSearch(Searcher):
    """A plugin written against the Searcher ABC alone (as a user would)."""

    def set_search_properties(self, metric, mode, config, **spec):
        super().set_search_properties(metric, mode, config)
        self.space, self.rng = config, random.Random(0)
        return True

    def _sample(self, space):
        if isinstance(space, dict):
            return {k: self._sample(v) for k, v in space.items() if not isinstance(v, (int, str))}
        return space.sample(self.rng)

    def suggest(self, trial_id):
        return self._sample(self.space)

    def on_trial_complete(self, trial_id, result=None, error=False):
        pass


def make_custom():
    return RandomSearch()


def make_basic():
    return BasicVariantGenerator(random_state=0)


def make_optuna():
    from raylite.tune.search.optuna import OptunaSearch
    return OptunaSearch(seed=0)


def make_hyperopt():
    from raylite.tune.search.hyperopt import HyperOptSearch
    return HyperOptSearch(random_state_seed=0, n_initial_points=5)


def make_bayesopt():
    from raylite.tune.search.bayesopt import BayesOptSearch
    return BayesOptSearch(random_state=0, random_search_steps=5,
                          gp_params={"n_restarts_optimizer": 0})


def make_limited():
    from raylite.tune.search.optuna import OptunaSearch
    return ConcurrencyLimiter(OptunaSearch(seed=1), max_concurrent=2)


def make_repeated():
    from raylite.tune.search.optuna import OptunaSearch
    return Repeater(OptunaSearch(seed=0), repeat=2)


SEARCHERS = {"basic": make_basic, "optuna": make_optuna, "hyperopt": make_hyperopt,
             "bayesopt": make_bayesopt, "limited_optuna": make_limited,
             "repeated_optuna": make_repeated, "custom": make_custom}


@pytest.fixture(params=sorted(SEARCHERS))
def make_searcher(request):
    return SEARCHERS[request.param]


def test_contract_suggestions_lie_in_the_space(make_searcher):
    searcher = make_searcher()
    assert isinstance(searcher, Searcher)
    assert searcher.set_search_properties("loss", "min", SPACE, num_samples=12) is True
    seen = []
    for i in range(12):
        config = searcher.suggest(f"t{i}")
        if config is None:  # a concurrency limit: finish the oldest trial, then ask again
            searcher.on_trial_complete(seen.pop(0), {"loss": 1.0})
            config = searcher.suggest(f"t{i}")
        assert isinstance(config, dict)
        full = space_mod.merge_config(SPACE, config, random.Random(0))
        check_in_space(full)
        seen.append(f"t{i}")
        searcher.on_trial_result(f"t{i}", {"loss": 2.0, "training_iteration": 1})
    for i, trial_id in enumerate(seen):
        if i % 3 == 0:
            searcher.on_trial_complete(trial_id, None, error=True)
        else:
            searcher.on_trial_complete(trial_id, {"loss": float(i), "training_iteration": 2})


def test_contract_learns_from_results(make_searcher):
    searcher = make_searcher()
    searcher.set_search_properties("loss", "min", {"x": tune.uniform(0, 1)}, num_samples=30)
    best = math.inf
    for i in range(30):
        config = searcher.suggest(str(i))
        loss = (config["x"] - 0.3) ** 2
        best = min(best, loss)
        searcher.on_trial_result(str(i), {"loss": loss, "training_iteration": 1})
        searcher.on_trial_complete(str(i), {"loss": loss, "training_iteration": 1})
    assert best < 0.01


def test_contract_save_and_restore(make_searcher, tmp_path):
    searcher = make_searcher()
    searcher.set_search_properties("loss", "min", {"x": tune.uniform(0, 1)}, num_samples=5)
    for i in range(3):
        config = searcher.suggest(str(i))
        searcher.on_trial_complete(str(i), {"loss": config["x"]})
    searcher.save(str(tmp_path / "searcher.pkl"))
    restored = make_searcher()
    restored.restore(str(tmp_path / "searcher.pkl"))
    config = restored.suggest("3")
    assert 0 <= config["x"] <= 1


def test_contract_conflicting_metric_is_an_error(make_searcher):
    searcher = make_searcher()
    searcher.set_search_properties("loss", "min", {"x": tune.uniform(0, 1)}, num_samples=2)
    with pytest.raises(ValueError):
        tune.run(lambda config: None, config={"x": tune.uniform(0, 1)}, search_alg=searcher,
                 metric="accuracy", mode="max", verbose=0)


def objective(config):
    tune.report(loss=(config["x"] - 0.3) ** 2 + config["bias"], bias=config["bias"])


def test_contract_end_to_end(ray, make_searcher, tmp_path):
    analysis = tune.run(objective, config={"x": tune.uniform(0, 1), "bias": tune.choice([0, 1])},
                        search_alg=make_searcher(), metric="loss", mode="min", num_samples=12,
                        storage_path=str(tmp_path), verbose=0)
    assert len(analysis.trials) == 12
    assert all(t.status == "TERMINATED" for t in analysis.trials)
    best = analysis.best_config
    assert 0 <= best["x"] <= 1 and best["bias"] == 0
    assert analysis.best_result["loss"] < 0.1


# ---- plugin specifics --------------------------------------------------------------------
def test_basic_variant_generator_counts_and_finishes():
    gen = BasicVariantGenerator(points_to_evaluate=[{"x": 7}], random_state=3)
    gen.set_search_properties(None, None, {"x": tune.grid_search([1, 2]), "y": tune.uniform(0, 1)},
                              num_samples=2)
    assert gen.total_samples() == 5
    configs = [gen.suggest(str(i)) for i in range(5)]
    assert [c["x"] for c in configs] == [7, 1, 2, 1, 2]
    assert gen.suggest("5") == Searcher.FINISHED


def test_concurrency_limiter_holds_back():
    limited = ConcurrencyLimiter(BasicVariantGenerator(), max_concurrent=2)
    limited.set_search_properties(None, None, {"x": tune.uniform(0, 1)}, num_samples=10)
    assert isinstance(limited.suggest("a"), dict) and isinstance(limited.suggest("b"), dict)
    assert limited.suggest("c") is None
    limited.on_trial_complete("a", {"x": 1})
    assert isinstance(limited.suggest("c"), dict)
    with pytest.raises(ValueError, match="max_concurrent"):
        ConcurrencyLimiter(BasicVariantGenerator(), max_concurrent=0)


def timed(config):
    import time
    start = time.time()
    time.sleep(0.03)
    tune.report(start=start, end=time.time(), loss=config["x"])


def test_concurrency_limiter_in_a_run(ray, tmp_path):
    analysis = tune.run(timed, config={"x": tune.uniform(0, 1)}, num_samples=3,
                        search_alg=ConcurrencyLimiter(make_optuna(), max_concurrent=1),
                        metric="loss", mode="min", storage_path=str(tmp_path), verbose=0)
    spans = sorted((t.last_result["start"], t.last_result["end"]) for t in analysis.trials)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))


@pytest.mark.parametrize("make", [make_optuna, make_hyperopt, make_bayesopt])
def test_searchers_reject_grid_search(make):
    with pytest.raises(ValueError, match="'x'.*grid_search"):
        make().set_search_properties("loss", "min", {"x": tune.grid_search([1, 2])})


@pytest.mark.parametrize("make", [make_optuna, make_hyperopt, make_bayesopt])
def test_searcher_with_its_own_space(ray, make, tmp_path):
    from raylite.tune.search.hyperopt import HyperOptSearch
    from raylite.tune.search.optuna import OptunaSearch
    cls = type(make())
    kwargs = {OptunaSearch: {"seed": 0}, HyperOptSearch: {"random_state_seed": 0}}.get(
        cls, {"random_state": 0})
    searcher = cls({"x": tune.uniform(0, 1)}, metric="loss", mode="min",
                   points_to_evaluate=[{"x": 0.3}], **kwargs)
    analysis = tune.run(timed, search_alg=searcher, num_samples=3, config={"fixed": 1},
                        storage_path=str(tmp_path), verbose=0)
    assert analysis.trials[0].config == {"x": 0.3, "fixed": 1}
    assert analysis.get_best_config("loss", "min")["x"] <= 0.3  # loss is x
    with pytest.raises(ValueError, match="already has a search space"):
        tune.run(timed, search_alg=cls({"x": tune.uniform(0, 1)}, metric="loss", mode="min"),
                 config={"y": tune.uniform(0, 1)}, verbose=0)
    assert HyperOptSearch and OptunaSearch


def test_both_import_paths_give_the_same_classes():
    import raylite.tune.search.basic_variant as s_basic
    import raylite.tune.search.bayesopt as s_bayesopt
    import raylite.tune.search.hyperopt as s_hyperopt
    import raylite.tune.search.optuna as s_optuna
    import raylite.tune.search.repeater as s_repeater
    import raylite.tune.suggest.basic_variant as g_basic
    import raylite.tune.suggest.bayesopt as g_bayesopt
    import raylite.tune.suggest.hyperopt as g_hyperopt
    import raylite.tune.suggest.optuna as g_optuna
    import raylite.tune.suggest.repeater as g_repeater
    from raylite.tune import search, suggest
    assert s_optuna.OptunaSearch is g_optuna.OptunaSearch is search.OptunaSearch
    assert s_hyperopt.HyperOptSearch is g_hyperopt.HyperOptSearch is suggest.HyperOptSearch
    assert s_bayesopt.BayesOptSearch is g_bayesopt.BayesOptSearch is suggest.BayesOptSearch
    assert s_basic.BasicVariantGenerator is g_basic.BasicVariantGenerator
    assert s_repeater.Repeater is g_repeater.Repeater is suggest.Repeater
    assert search.ConcurrencyLimiter is suggest.ConcurrencyLimiter


def test_bayesopt_maps_every_domain_and_rejects_randn():
    from raylite.tune.search.bayesopt import BayesOptSearch
    search = BayesOptSearch(SPACE, metric="loss", mode="min", random_state=3,
                            random_search_steps=2,
                            points_to_evaluate=[{"lr": 0.01, "momentum": 0.5, "dropout": 0.2,
                                                 "layers": 2, "width": 32, "act": "tanh",
                                                 "net": {"decay": 0.1}}])
    first = search.suggest("0")
    assert first["layers"] == 2 and first["width"] == 32 and first["act"] == "tanh"
    assert first["lr"] == pytest.approx(0.01) and first["net"]["decay"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="'noise'.*BayesOptSearch cannot search"):
        BayesOptSearch({"noise": tune.randn(0, 1)}, metric="loss", mode="min")
    with pytest.raises(ValueError, match="kind"):
        BayesOptSearch(utility_kwargs={"kind": "best"})


def test_repeater_averages_the_repeats():
    class Recording(BasicVariantGenerator):
        def on_trial_complete(self, trial_id, result=None, error=False):
            self.told = (trial_id, result)
            super().on_trial_complete(trial_id, result, error)

    inner = Recording(random_state=0)
    repeated = Repeater(inner, repeat=3)
    repeated.set_search_properties("loss", "min", {"x": tune.uniform(0, 1)}, num_samples=9)
    configs = [repeated.suggest(f"t{i}") for i in range(3)]
    assert [c["__trial_index__"] for c in configs] == [0, 1, 2]
    assert len({c["x"] for c in configs}) == 1
    repeated.on_trial_complete("t0", {"loss": 1.0})
    repeated.on_trial_complete("t1", None, error=True)
    assert not hasattr(inner, "told")  # not before every repeat has ended
    repeated.on_trial_complete("t2", {"loss": 3.0})
    assert inner.told == ("t0", {"loss": 2.0})
    assert repeated.suggest("t3")["x"] != configs[0]["x"]
    with pytest.raises(ValueError, match="repeat"):
        Repeater(inner, repeat=0)


def test_search_alg_by_name(ray, tmp_path):
    analysis = tune.run(timed, config={"x": tune.uniform(0, 1)}, search_alg="optuna",
                        metric="loss", mode="min", num_samples=2, storage_path=str(tmp_path),
                        verbose=0)
    assert len(analysis.trials) == 2
