"""scikit-learn's own estimator checks (``check_estimator``) on all six estimators, with tiny networks
and short runs so that the whole suite stays within a couple of minutes. A check that cannot apply is
declared below with its reason (it then runs as an expected failure); none is skipped by us."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from aae import (
    AAE,
    VAE,
    ClusteringAAE,
    DimReductionAAE,
    SemiSupervisedAAE,
    SupervisedAAE,
)

TINY = {"hidden": [16], "disc_hidden": [16], "epochs": 3, "lr": 0.01, "random_state": 0}
ESTIMATORS = [AAE(**TINY), VAE(**TINY), SupervisedAAE(**TINY), SemiSupervisedAAE(**{**TINY, "epochs": 10}),
              ClusteringAAE(n_clusters=3, **{**TINY, "epochs": 20}), DimReductionAAE(**TINY)]

EXPECTED_FAILURES = {
    "SemiSupervisedAAE": {
        "check_classifiers_classes": "-1 marks an unlabeled point (as in sklearn.semi_supervised), so the check's "
                                     "labels {-1, 1} are one class, which SemiSupervisedAAE refuses",
    },
}


def expected_failed_checks(estimator) -> dict[str, str]:
    return EXPECTED_FAILURES.get(type(estimator).__name__, {})


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks, xfail_strict=True)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
