"""The scikit-learn-style estimators: fit / transform / predict / sample over the same trainer."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from aae import AAE, VAE, ClusteringAAE, DimReductionAAE, SemiSupervisedAAE, SupervisedAAE
from aae.errors import DataError

TINY = dict(hidden=[64], disc_hidden=[32], epochs=2, batch_size=50)


@pytest.fixture(scope="module")
def data():
    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32), y


def some_labels(y, n=200):
    out = y.copy()
    out[n:] = -1
    return out


def test_semi_supervised_learns_from_string_labels_and_answers_in_them(data):
    x, y = data
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    y_str = names[y].astype(object)
    y_str[300:] = -1  # sklearn.semi_supervised's marker, in an object array
    clf = SemiSupervisedAAE(z_dim=4, **{**TINY, "epochs": 4}).fit(x, y_str)
    assert sorted(clf.classes_) == sorted(names)
    proba = clf.predict_proba(x[:50])
    assert proba.shape == (50, 10) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert set(clf.predict(x)) <= set(names)
    # four epochs of a tiny net: far from done, but well above chance (10 %)
    assert clf.score(x[1000:], names[y[1000:]]) > 0.4
    assert clf.transform(x[:7]).shape == (7, 4)  # the style code
    images, labels = clf.sample(6, y=names[[1, 1, 2, 3, 5, 8]], random_state=0)
    assert images.shape == (6, 64) and list(labels) == list(names[[1, 1, 2, 3, 5, 8]])
    assert ((images >= 0) & (images <= 1)).all()


def test_clone_copies_settings_not_what_was_learned(data):
    x, _ = data
    est = AAE(z_dim=3, prior="uniform", overrides=("train.ema=0.9",), **TINY).fit(x)
    twin = clone(est)
    assert twin.get_params() == est.get_params()
    assert not hasattr(twin, "model_") and hasattr(est, "model_")
    assert est.config_.model.prior == {"name": "uniform"} and est.config_.train.ema == 0.9
    assert len(est.history_) == 2


def test_sample_draws_the_same_images_for_the_same_random_state(data):
    x, y = data
    est = SupervisedAAE(z_dim=2, **TINY).fit(x, y)
    a, la = est.sample(5, random_state=3)
    b, lb = est.sample(5, random_state=3)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    with pytest.raises(DataError, match="needs y"):
        est.inverse_transform(np.zeros((3, 2)))
    assert est.inverse_transform(np.zeros((3, 2)), y=[0, 4, 9]).shape == (3, 64)


def test_label_conditioned_aae_draws_each_class_from_its_part_of_the_prior(data):
    x, y = data
    est = AAE(z_dim=2, prior="mixture", **TINY).fit(x, some_labels(y))
    assert est.config_.model.regime == "label_conditioned"
    _, labels = est.sample(20, random_state=0)
    assert set(labels) <= set(range(10))
    est.fit(x)  # refit without labels: a plain AAE again, no categories left over
    assert est.config_.model.regime == "unsupervised" and not hasattr(est, "classes_")
    assert est.sample(4)[1] is None
    with pytest.raises(DataError, match="no classes"):
        est.sample(2, y=[0, 1])


def test_vae_uses_the_gaussian_encoder_and_the_elbo(data):
    x, _ = data
    est = VAE(z_dim=2, **TINY).fit(x)
    assert (est.config_.model.objective, est.config_.model.encoder) == ("vae", "gaussian")
    assert {"reconstruction", "kl"} <= set(est.history_[0]) and "discriminator" not in est.history_[0]


def test_clustering_labels_every_training_point(data):
    x, _ = data
    est = ClusteringAAE(n_clusters=12, z_dim=3, **TINY).fit(x)
    assert est.labels_.shape == (len(x),) and est.labels_.max() < 12
    assert est.predict_proba(x[:5]).shape == (5, 12)
    assert np.array_equal(est.fit_predict(x), est.labels_)


def test_dim_reduction_transform_gives_the_representation(data):
    x, y = data
    unsup = DimReductionAAE(n_components=2, n_clusters=6, **TINY).fit(x)
    r = unsup.transform(x[:9])
    assert r.shape == (9, 2)
    assert unsup.model_.cluster_heads.shape == (6, 2)
    assert unsup.inverse_transform(r).shape == (9, 64)
    semi = DimReductionAAE(n_components=3, **TINY).fit(x, some_labels(y))
    assert semi.transform(x[:4]).shape == (4, 3) and len(semi.classes_) == 10
    with pytest.raises(DataError, match="n_clusters = 5 but y has 10 classes"):
        DimReductionAAE(n_clusters=5, **TINY).fit(x, some_labels(y))


def test_an_estimator_works_inside_a_pipeline(data):
    x, _ = data
    pipe = make_pipeline(MinMaxScaler(), AAE(z_dim=2, **TINY))
    assert pipe.fit_transform(x * 16.0).shape == (len(x), 2)


@pytest.mark.parametrize("make_call, message", [
    (lambda e, x, y: e.fit(x, y[:-1]), r"y has shape \(1796,\), expected \(1797,\)"),
    (lambda e, x, y: e.fit(x, np.full_like(y, -1)), "every label in y is -1"),
    (lambda e, x, y: e.fit(x, None), "needs y"),
    (lambda e, x, y: e.fit(np.where(np.arange(64) == 3, np.nan, x), y), "NaN"),
])
def test_bad_input_is_named(data, make_call, message):
    x, y = data
    with pytest.raises(DataError, match=message):
        make_call(SemiSupervisedAAE(**TINY), x, some_labels(y))


def test_predict_refuses_data_of_another_width_and_unseen_classes(data):
    x, y = data
    clf = SemiSupervisedAAE(z_dim=2, **TINY).fit(x, some_labels(y))
    with pytest.raises(DataError, match="X has 10 features, but SemiSupervisedAAE was fitted with 64"):
        clf.predict(x[:, :10])
    with pytest.raises(DataError, match="not a class seen in fit"):
        clf.sample(2, y=[3, 12])


def test_fit_with_a_checkpoint_dir_resumes_where_it_stopped(data, tmp_path):
    x, _ = data
    AAE(z_dim=2, checkpoint_dir=str(tmp_path), **TINY).fit(x)
    longer = AAE(z_dim=2, checkpoint_dir=str(tmp_path), **{**TINY, "epochs": 3}).fit(x)
    assert [row["epoch"] for row in longer.history_] == [1, 2, 3]
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 3
