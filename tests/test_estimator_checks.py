"""scikit-learn's own estimator checks (``check_estimator``) on all six estimators, with tiny networks
and short runs so that the whole suite stays within a couple of minutes. A check that cannot apply is
declared below with its reason (it then runs as an expected failure); none is skipped by us. scikit-learn
itself skips its array API checks unless SCIPY_ARRAY_API=1 is set, and its pandas and polars checks
where those are not installed."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from aae import AAE, VAE, ClusteringAAE, DimReductionAAE, SemiSupervisedAAE, SupervisedAAE

TINY = {"hidden": [16], "disc_hidden": [16], "epochs": 3, "lr": 0.01, "random_state": 0}
ESTIMATORS = [
    AAE(**TINY),
    VAE(**TINY),
    SupervisedAAE(**TINY),
    SemiSupervisedAAE(**{**TINY, "epochs": 10}),
    ClusteringAAE(n_clusters=3, **{**TINY, "epochs": 20}),
    DimReductionAAE(**TINY),
]

# inverse_transform(Z) of a model whose decoder reads a class or cluster beside z needs that y too;
# the array API check (run only with SCIPY_ARRAY_API=1 set, else scikit-learn skips it) calls it without
NEEDS_Y = {
    "check_array_api_input": "inverse_transform(Z) needs y: the decoder reads the class or cluster beside "
    "the code z, and the check gives none"
}
# the sparse checks read any predict_proba as a classifier's
SPARSE_PROBA = dict.fromkeys(
    ("check_estimator_sparse_array", "check_estimator_sparse_matrix"),
    "the check reads predict_proba as a classifier's (2 or 4 columns); a clusterer's has one column per "
    "cluster (sparse input is tested in test_estimators.py)",
)
EXPECTED_FAILURES = {
    "SupervisedAAE": NEEDS_Y,
    "SemiSupervisedAAE": {
        "check_classifiers_classes": "-1 marks an unlabeled point (as in sklearn.semi_supervised), so the check's "
        "labels {-1, 1} are one class, which SemiSupervisedAAE refuses",
        **NEEDS_Y,
    },
    "ClusteringAAE": {**NEEDS_Y, **SPARSE_PROBA},
    "DimReductionAAE": SPARSE_PROBA,
}


def expected_failed_checks(estimator) -> dict[str, str]:
    return EXPECTED_FAILURES.get(type(estimator).__name__, {})


@pytest.mark.slow
@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks, xfail_strict=True)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
