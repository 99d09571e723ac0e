"""What the estimators read and give back beyond a real-valued table: image arrays, binary, one-hot
and integer columns, sparse input, and the containers set_output asks for."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from aae import AAE, VAE, ClusteringAAE, SemiSupervisedAAE, SupervisedAAE
from aae.errors import DataError
from aae.estimators.columns import detect

TINY = {"hidden": [32], "disc_hidden": [16], "epochs": 2, "batch_size": 50, "random_state": 0}


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return (x / 16.0).reshape(-1, 8, 8), y


# -- images -------------------------------------------------------------------------------------
def test_image_arrays_train_the_convolutional_networks_and_come_back_as_images(digits):
    images, y = digits
    est = AAE(**TINY).fit(images)
    assert est.image_shape_ == (8, 8) and est.n_features_in_ == 64 and est.config_.model.net == "conv"
    codes = est.transform(images[:5])
    assert codes.shape == (5, 2) and np.array_equal(codes, est.transform(images[:5].reshape(5, 64)))
    assert est.inverse_transform(codes).shape == (5, 8, 8)
    assert est.sample(3, random_state=0)[0].shape == (3, 8, 8)
    with pytest.raises(DataError, match=r"X holds images of shape \(4, 16\); this estimator was fitted on \(8, 8\)"):
        est.transform(images[:5].reshape(5, 4, 16))
    # net="mlp" keeps the MLPs, and a table never gets the convolutional networks
    assert AAE(net="mlp", **TINY).fit(images).config_.model.net == "mlp"
    assert AAE(**TINY).fit(images.reshape(-1, 64)).config_.model.net == "mlp"


def test_colour_images_with_labels(digits):
    rgb = np.random.default_rng(0).random((120, 16, 16, 3)).astype(np.float32)
    y = np.arange(120) % 3
    clf = SemiSupervisedAAE(**TINY).fit(rgb, np.where(np.arange(120) < 60, y, -1))
    assert clf.config_.model.net == "conv" and clf.predict(rgb[:4]).shape == (4,)
    samples, labels = clf.sample(4, y=[0, 1, 2, 0], random_state=0)
    assert samples.shape == (4, 16, 16, 3) and samples.dtype == np.float32 and list(labels) == [0, 1, 2, 0]
    sup = SupervisedAAE(**TINY).fit(rgb, y)
    assert sup.inverse_transform(sup.transform(rgb[:2]), y=[1, 2]).shape == (2, 16, 16, 3)


# -- mixed columns --------------------------------------------------------------------------------
def mixed_table(n=300, seed=0):
    """7 columns: real, binary, a one-hot group of three, an integer count, real"""
    rng = np.random.default_rng(seed)
    group = np.eye(3)[rng.integers(0, 3, n)]
    return np.column_stack([rng.normal(5, 2, n), rng.integers(0, 2, n), group, rng.poisson(4, n), rng.random(n)])


def test_binary_one_hot_and_integer_columns_are_detected():
    assert detect(mixed_table()) == {"binary": [1], "integer": [5], "onehot": [[2, 3, 4]]}
    # two binary columns that are not one-hot stay binary; a constant column is real
    x = np.column_stack([[0, 1, 1, 0], [1, 1, 0, 0], [3, 3, 3, 3]]).astype(float)
    assert detect(x) == {"binary": [0, 1], "integer": [], "onehot": []}


def test_samples_hold_values_their_columns_can_hold():
    x = mixed_table()
    for cls in (AAE, VAE):
        est = cls(**TINY).fit(x)
        samples, _ = est.sample(200, random_state=0)
        assert set(np.unique(samples[:, 1])) <= {0.0, 1.0}
        assert (samples[:, 2:5].sum(1) == 1).all() and set(np.unique(samples[:, 2:5])) <= {0.0, 1.0}
        assert (samples[:, 5] == np.round(samples[:, 5])).all() and samples[:, 5].min() >= x[:, 5].min()
        assert len(np.unique(samples[:, 0])) > 100  # real columns stay real
        assert est.model_.columns is not None and est.mean_[1] == 0 and est.scale_[3] == 1
        back = est.inverse_transform(est.transform(x[:20]))
        assert (back[:, 2:5].sum(1) == 1).all()


def test_column_types_can_be_declared_or_turned_off():
    x = mixed_table()
    est = AAE(column_types={"onehot": [[2, 3, 4]]}, **TINY).fit(x)
    assert est.column_types_ == {"binary": [], "integer": [], "onehot": [[2, 3, 4]]}
    assert AAE(column_types=None, **TINY).fit(x).model_.columns is None
    with pytest.raises(ValueError, match="column_types has unknown kind 'ordinal'"):
        AAE(column_types={"ordinal": [0]}, **TINY).fit(x)
    with pytest.raises(DataError, match="column 0 is declared binary or one-hot but holds values other than 0 and 1"):
        AAE(column_types={"binary": [0]}, **TINY).fit(x)
    with pytest.raises(ValueError, match="column_types is for tables"):
        AAE(column_types={"binary": [0]}, **TINY).fit(np.zeros((20, 8, 8)))


# -- sizes and what fit records -----------------------------------------------------------------
def test_oversized_codes_are_warned_about_and_clusters_beyond_the_points_refused():
    x = mixed_table(60)
    with pytest.warns(UserWarning, match="n_components = 9 is more than the 7 features of X"):
        AAE(n_components=9, **TINY).fit(x)
    with pytest.raises(ValueError, match="n_clusters = 200 is more than the 60 points of X"):
        ClusteringAAE(n_clusters=200, **TINY).fit(x)


def test_fit_records_its_iterations_and_loss_curve_and_clustering_scores(digits):
    x = digits[0].reshape(-1, 64)[:400]
    est = VAE(**TINY).fit(x)
    assert est.n_iter_ == 2 and len(est.loss_curve_) == 2
    assert est.loss_curve_[0] == pytest.approx(est.history_[0]["reconstruction"] + est.history_[0]["kl"])
    clusters = ClusteringAAE(n_clusters=4, **TINY).fit(x)
    score = clusters.score(x)
    assert np.log(1 / 4) <= score <= 0
    proba = clusters.predict_proba(x)
    assert score == pytest.approx(np.log(proba.max(1)).mean(), rel=1e-5)


def test_set_output_gives_dataframes_from_every_method_that_gives_features():
    pd = pytest.importorskip("pandas")
    x = pd.DataFrame(mixed_table(), columns=list("abcdefg"))
    est = AAE(**TINY).set_output(transform="pandas").fit(x)
    assert list(est.transform(x).columns) == ["aae0", "aae1"]
    assert list(est.inverse_transform(est.transform(x)).columns) == list("abcdefg")
    assert list(est.sample(3)[0].columns) == list("abcdefg")


# -- saved and loaded -----------------------------------------------------------------------------
def _same_outputs(a, b, x, y=None):
    """transform, sample and inverse_transform (and predict where there is one) agree exactly."""
    codes = a.transform(x)
    assert np.array_equal(codes, b.transform(x))
    assert np.array_equal(a.sample(6, random_state=3)[0], b.sample(6, random_state=3)[0])
    assert np.array_equal(a.inverse_transform(codes, y), b.inverse_transform(codes, y))
    if hasattr(a, "predict"):
        assert np.array_equal(a.predict(x), b.predict(x))
    assert (b.n_iter_, b.loss_curve_, b.history_) == (a.n_iter_, a.loss_curve_, a.history_)


def test_a_saved_estimator_of_images_loads_with_its_shape_and_networks(digits, tmp_path):
    import aae

    images, y = digits[0][:300].astype(np.float32), digits[1][:300]
    est = AAE(**TINY).fit(images)
    back = aae.load_estimator(est.save(tmp_path / "aae"))
    assert back.image_shape_ == (8, 8) and back.config_.model.net == "conv"
    _same_outputs(est, back, images)
    assert back.sample(2, random_state=0)[0].shape == (2, 8, 8) and back.embedding_.dtype == np.float32
    rgb = np.random.default_rng(0).random((120, 16, 16, 3))
    sup = SupervisedAAE(**TINY).fit(rgb, np.arange(120) % 3)
    back = aae.load_estimator(sup.save(tmp_path / "sup"))
    assert back.image_shape_ == (16, 16, 3)
    _same_outputs(sup, back, rgb[:10], y=np.arange(10) % 3)
    semi = SemiSupervisedAAE(**TINY).fit(images, np.where(np.arange(300) % 3 == 0, y, -1))
    _same_outputs(semi, aae.load_estimator(semi.save(tmp_path / "semi")), images, y=semi.predict(images))


def test_a_saved_estimator_of_mixed_columns_decodes_the_same_values(tmp_path):
    import aae

    x = mixed_table()
    for cls in (AAE, VAE):
        est = cls(**TINY).fit(x)
        back = aae.load_estimator(est.save(tmp_path / cls.__name__))
        assert back.column_types_ == est.column_types_ == {"binary": [1], "integer": [5], "onehot": [[2, 3, 4]]}
        assert back.model_.columns.to_dict() == est.model_.columns.to_dict()
        for name in ("mean_", "scale_", "data_min_", "data_max_"):
            assert np.array_equal(getattr(back, name), getattr(est, name))
        _same_outputs(est, back, x)
        assert aae.load(tmp_path / cls.__name__).columns.to_dict() == est.model_.columns.to_dict()  # aae sample too
    bernoulli = AAE(**TINY).fit(np.random.default_rng(1).random((100, 5)))
    back = aae.load_estimator(bernoulli.save(tmp_path / "unit"))
    assert back.output_ == "bernoulli" and back.model_.columns is None
    _same_outputs(bernoulli, back, np.random.default_rng(2).random((10, 5)))


def test_a_checkpoint_dir_trains_afresh_for_other_column_kinds_or_networks(digits, tmp_path):
    import aae

    x, where = mixed_table(100), str(tmp_path / "ck")
    AAE(column_types=None, checkpoint_dir=where, **TINY).fit(x)
    typed = AAE(checkpoint_dir=where, **TINY).fit(x)  # the same data and config, other likelihoods: afresh
    assert np.array_equal(typed.transform(x), AAE(**TINY).fit(x).transform(x))
    _same_outputs(typed, aae.load_estimator(where), x)  # the checkpoint_dir loads as the fit
    images = digits[0][:100]
    AAE(net="mlp", checkpoint_dir=str(tmp_path / "im"), **TINY).fit(images)
    conv = AAE(checkpoint_dir=str(tmp_path / "im"), **TINY).fit(images)
    assert np.array_equal(conv.transform(images), AAE(**TINY).fit(images).transform(images))
