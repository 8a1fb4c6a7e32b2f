"""raylite.data.preprocessors against scikit-learn's equivalents on the same data: each is
fitted on a Dataset of several blocks (statistics from Data aggregations), applied to the
Dataset and to a single pandas batch, and compared with sklearn's output."""

import numpy as np
import pandas as pd
import pytest

sklearn_preprocessing = pytest.importorskip("sklearn.preprocessing")
sklearn_impute = pytest.importorskip("sklearn.impute")

from raylite.data import preprocessors as pp  # noqa: E402

RNG = np.random.default_rng(0)
FRAME = pd.DataFrame({
    "a": RNG.normal(3.0, 2.0, 40),
    "b": RNG.uniform(-5.0, 1.0, 40),
    "city": RNG.choice(["paris", "oslo", "lima"], 40),
    "size": RNG.choice(["S", "M", "L", "XL"], 40),
})


def dataset(ray, frame=FRAME):
    """The frame as a dataset of 4 blocks."""
    chunks = [frame.iloc[i:i + len(frame) // 4] for i in range(0, len(frame), len(frame) // 4)]
    return ray.data.from_pandas(chunks)


def transformed(ray, preprocessor, frame=FRAME):
    out = preprocessor.fit(dataset(ray, frame)).transform(dataset(ray, frame)).to_pandas()
    batch = preprocessor.transform_batch(frame.copy())
    return out.reset_index(drop=True), batch.reset_index(drop=True)


@pytest.mark.parametrize("ours, theirs", [
    (lambda: pp.StandardScaler(["a", "b"]), sklearn_preprocessing.StandardScaler),
    (lambda: pp.MinMaxScaler(["a", "b"]), sklearn_preprocessing.MinMaxScaler),
    (lambda: pp.MaxAbsScaler(["a", "b"]), sklearn_preprocessing.MaxAbsScaler),
    (lambda: pp.RobustScaler(["a", "b"]), sklearn_preprocessing.RobustScaler),
    (lambda: pp.Normalizer(["a", "b"]), sklearn_preprocessing.Normalizer),
    (lambda: pp.Normalizer(["a", "b"], norm="l1"),
     lambda: sklearn_preprocessing.Normalizer(norm="l1")),
], ids=["standard", "minmax", "maxabs", "robust", "normalizer-l2", "normalizer-l1"])
def test_numeric_scalers_match_sklearn(ray, ours, theirs):
    expected = theirs().fit_transform(FRAME[["a", "b"]].to_numpy())
    out, batch = transformed(ray, ours())
    np.testing.assert_allclose(out[["a", "b"]].to_numpy(), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(batch[["a", "b"]].to_numpy(), expected, rtol=1e-9, atol=1e-12)
    assert out["city"].tolist() == FRAME["city"].tolist()  # other columns untouched


def test_standard_scaler_stats(ray):
    scaler = pp.StandardScaler(["a"]).fit(dataset(ray))
    assert scaler.stats_["mean(a)"] == pytest.approx(FRAME["a"].mean())
    assert scaler.stats_["std(a)"] == pytest.approx(FRAME["a"].std(ddof=0))


def test_robust_scaler_quantiles_match_numpy(ray):
    scaler = pp.RobustScaler(["a"], quantile_range=(0.1, 0.9)).fit(dataset(ray))
    low, median, high = np.percentile(FRAME["a"], [10, 50, 90])
    assert scaler.stats_["low_quantile(a)"] == pytest.approx(low)
    assert scaler.stats_["median(a)"] == pytest.approx(median)
    assert scaler.stats_["high_quantile(a)"] == pytest.approx(high)


@pytest.mark.parametrize("strategy", ["mean", "most_frequent", "constant"])
def test_simple_imputer_matches_sklearn(ray, strategy):
    frame = pd.DataFrame({"x": [1.0, np.nan, 3.0, 3.0, np.nan, 7.0, 3.0, 10.0]})
    kwargs = {"fill_value": -1.0} if strategy == "constant" else {}
    expected = sklearn_impute.SimpleImputer(strategy=strategy, **kwargs).fit_transform(frame)
    ours = pp.SimpleImputer(["x"], strategy=strategy, **kwargs)
    out, batch = transformed(ray, ours, frame)
    np.testing.assert_allclose(out[["x"]].to_numpy(), expected)
    np.testing.assert_allclose(batch[["x"]].to_numpy(), expected)


def test_ordinal_encoder_matches_sklearn(ray):
    expected = sklearn_preprocessing.OrdinalEncoder().fit_transform(FRAME[["city", "size"]])
    out, batch = transformed(ray, pp.OrdinalEncoder(["city", "size"]))
    np.testing.assert_array_equal(out[["city", "size"]].to_numpy(), expected)
    np.testing.assert_array_equal(batch[["city", "size"]].to_numpy(), expected)
    encoder = pp.OrdinalEncoder(["city"]).fit(dataset(ray))
    assert encoder.stats_["unique_values(city)"] == {"lima": 0, "oslo": 1, "paris": 2}


def test_one_hot_encoder_matches_sklearn(ray):
    sk = sklearn_preprocessing.OneHotEncoder(sparse_output=False).fit(FRAME[["city"]])
    expected = sk.transform(FRAME[["city"]])
    out, batch = transformed(ray, pp.OneHotEncoder(["city"]))
    names = [f"city_{v}" for v in sk.categories_[0]]
    assert "city" not in out.columns
    np.testing.assert_array_equal(out[names].to_numpy(), expected)
    np.testing.assert_array_equal(batch[names].to_numpy(), expected)


def test_one_hot_encoder_max_categories_keeps_the_most_frequent(ray):
    frame = pd.DataFrame({"c": ["a"] * 5 + ["b"] * 3 + ["c"]})
    encoder = pp.OneHotEncoder(["c"], max_categories={"c": 2}).fit(dataset(ray, frame))
    assert list(encoder.stats_["unique_values(c)"]) == ["a", "b"]


def test_label_encoder_matches_sklearn_and_inverts(ray):
    expected = sklearn_preprocessing.LabelEncoder().fit_transform(FRAME["size"])
    encoder = pp.LabelEncoder("size")
    out, batch = transformed(ray, encoder)
    np.testing.assert_array_equal(out["size"].to_numpy(), expected)
    np.testing.assert_array_equal(batch["size"].to_numpy(), expected)
    assert encoder.inverse_transform_batch(batch)["size"].tolist() == FRAME["size"].tolist()


def test_categorizer_gives_pandas_categories(ray):
    out, batch = transformed(ray, pp.Categorizer(["city"]))
    assert list(batch["city"].cat.categories) == ["lima", "oslo", "paris"]
    assert batch["city"].astype(str).tolist() == FRAME["city"].tolist()
    assert out["city"].astype(str).tolist() == FRAME["city"].tolist()


def test_concatenator_makes_a_tensor_column(ray):
    concat = pp.Concatenator(output_column_name="features", include=["a", "b"], dtype=np.float32)
    out = concat.transform(dataset(ray)).to_pandas()
    features = np.stack(out["features"].to_list())
    assert features.dtype == np.float32 and features.shape == (40, 2)
    np.testing.assert_allclose(features, FRAME[["a", "b"]].to_numpy(np.float32))
    assert "a" not in out.columns and "city" in out.columns
    batch = concat.transform_batch({"a": np.array([1.0]), "b": np.array([2.0])})
    assert batch["features"].tolist() == [[1.0, 2.0]]


def test_batch_mapper_and_chain(ray):
    chain = pp.Chain(pp.BatchMapper(lambda df: df.assign(a=df["a"] * 10), batch_format="pandas"),
                     pp.StandardScaler(["a"]))
    assert chain.fit_status() == "NOT_FITTED"
    out, batch = transformed(ray, chain)
    expected = sklearn_preprocessing.StandardScaler().fit_transform(FRAME[["a"]] * 10)
    np.testing.assert_allclose(out[["a"]].to_numpy(), expected)
    np.testing.assert_allclose(batch[["a"]].to_numpy(), expected)
    assert chain.fit_status() == "FITTED"


def test_fit_reads_statistics_not_rows(ray, monkeypatch):
    """fit must not pull the rows into the driver: only aggregates (a few rows) come back."""
    from raylite.data import Dataset
    real_take_all = Dataset.take_all
    largest = []

    def take_all(self, *args, **kwargs):
        rows = real_take_all(self, *args, **kwargs)
        largest.append(len(rows))
        return rows

    monkeypatch.setattr(Dataset, "take_all", take_all)
    for name in ("to_pandas", "iter_rows", "iter_batches"):
        monkeypatch.setattr(Dataset, name, lambda *a, **k: pytest.fail("rows pulled"))
    for preprocessor in (pp.StandardScaler(["a"]), pp.MinMaxScaler(["a"]),
                         pp.OrdinalEncoder(["city"]), pp.SimpleImputer(["a"]),
                         pp.SimpleImputer(["city"], strategy="most_frequent")):
        preprocessor.fit(dataset(ray))
        assert preprocessor.fit_status() == "FITTED"
    assert max(largest) <= 3 < len(FRAME)


def test_errors_name_the_problem(ray):
    with pytest.raises(pp.PreprocessorNotFittedException, match="fit"):
        pp.StandardScaler(["a"]).transform(dataset(ray))
    with pytest.raises(ValueError, match="no column 'nope'"):
        pp.StandardScaler(["nope"]).fit(dataset(ray))
    with pytest.raises(ValueError, match=r"\['a'\] are not in the batch"):
        pp.StandardScaler(["a"]).fit(dataset(ray)).transform_batch(FRAME[["b"]])
    with pytest.raises(ValueError, match="strategy"):
        pp.SimpleImputer(["a"], strategy="median")
    with pytest.raises(TypeError, match="Dataset"):
        pp.StandardScaler(["a"]).fit(FRAME)
