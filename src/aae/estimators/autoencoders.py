"""The estimators without a categorical head: :class:`AAE`, :class:`VAE` and :class:`SupervisedAAE`
(parameters and data: :mod:`aae.estimators.classes`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..config.schema import ModelConfig
from .base import Estimator
from .settings import recipe


class AAE(Estimator):
    """The basic adversarial autoencoder (Section 2): q(z) matched to ``prior``. With y in
    ``fit(X, y)`` the z discriminator also reads the label (Section 2.3, -1 for unlabeled), so each
    class lands on its own part of a prior with parts (mixture, swiss roll)."""

    _labels = "optional"

    def __init__(
        self,
        n_components: int | None = None,
        *,
        net: str = "auto",
        hidden: int | list[int] | None = None,
        disc_hidden: int | list[int] | None = None,
        prior: Any = None,
        encoder: str | None = None,
        output: str = "auto",
        column_types: str | dict | None = "auto",
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | dict | None = None,
        config: str | None = None,
        overrides: Sequence[str] = (),
        checkpoint_dir: str | None = None,
        log_dir: str | None = None,
        device: str = "auto",
        random_state: Any = None,
        verbose: bool = False,
    ):
        self.n_components = n_components
        self.net = net
        self.hidden = hidden
        self.disc_hidden = disc_hidden
        self.prior = prior
        self.encoder = encoder
        self.output = output
        self.column_types = column_types
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.config = config
        self.overrides = overrides
        self.checkpoint_dir = checkpoint_dir
        self.log_dir = log_dir
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _labels_for_fit(self, y, n):
        labels, k, _ = super()._labels_for_fit(y, n)
        return labels, k, "unsupervised" if labels is None else "label_conditioned"


class VAE(Estimator):
    """The variational autoencoder on the same networks (Gaussian posterior, ELBO): the baseline.
    Its encoder is always the Gaussian one, so it has no ``encoder`` parameter.

    Without ``config`` each code dimension has FREE_BITS nats of KL free (``model.kl_free_bits``):
    with a unit-variance Gaussian decoder on standardized features the plain ELBO lets the code
    collapse onto the prior (the swiss roll's reconstruction left 95 % of the variance unexplained;
    docs/results/estimators.md)."""

    FREE_BITS = 2.0
    _objective = "vae"

    def __init__(
        self,
        n_components: int | None = None,
        *,
        net: str = "auto",
        hidden: int | list[int] | None = None,
        disc_hidden: int | list[int] | None = None,
        prior: Any = None,
        output: str = "auto",
        column_types: str | dict | None = "auto",
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | dict | None = None,
        config: str | None = None,
        overrides: Sequence[str] = (),
        checkpoint_dir: str | None = None,
        log_dir: str | None = None,
        device: str = "auto",
        random_state: Any = None,
        verbose: bool = False,
    ):
        self.n_components = n_components
        self.net = net
        self.hidden = hidden
        self.disc_hidden = disc_hidden
        self.prior = prior
        self.output = output
        self.column_types = column_types
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.config = config
        self.overrides = overrides
        self.checkpoint_dir = checkpoint_dir
        self.log_dir = log_dir
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _settings(self) -> dict[str, Any]:
        return {"encoder": "gaussian"}

    def _recipe(self, n: int, d: int, batch: int, labeled: bool) -> dict[str, Any]:
        return {"model": {"kl_free_bits": self.FREE_BITS}}


class SupervisedAAE(Estimator):
    """Section 4: the label goes to the decoder, so z holds only style. ``transform`` gives the
    style; ``inverse_transform(Z, y)`` and ``sample(n, y)`` draw any style in any class.

    Without ``config`` the z discriminator reads the label too, as in ``mnist_supervised``
    (``model.label_to_discriminator``): q(z|y) is then matched to the prior for every class, so z
    cannot carry the class and the decoder must read it from the label (without it, samples of two
    moons were read as the class asked for 53 % of the time; docs/results/estimators.md). The
    style code has ``n_components`` dimensions, by default 2, or ``n_features - 1`` when that is
    fewer, so that z alone cannot hold all of x."""

    _regime, _labels = "supervised", "all"

    def __init__(
        self,
        n_components: int | None = None,
        *,
        net: str = "auto",
        hidden: int | list[int] | None = None,
        disc_hidden: int | list[int] | None = None,
        prior: Any = None,
        encoder: str | None = None,
        output: str = "auto",
        column_types: str | dict | None = "auto",
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | dict | None = None,
        config: str | None = None,
        overrides: Sequence[str] = (),
        checkpoint_dir: str | None = None,
        log_dir: str | None = None,
        device: str = "auto",
        random_state: Any = None,
        verbose: bool = False,
    ):
        self.n_components = n_components
        self.net = net
        self.hidden = hidden
        self.disc_hidden = disc_hidden
        self.prior = prior
        self.encoder = encoder
        self.output = output
        self.column_types = column_types
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.config = config
        self.overrides = overrides
        self.checkpoint_dir = checkpoint_dir
        self.log_dir = log_dir
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _recipe(self, n: int, d: int, batch: int, labeled: bool) -> dict[str, Any]:
        table = recipe("mnist_supervised", ("label_to_discriminator",))
        # a style code narrower than the data: with as many dimensions as X has features, z can
        # hold all of x and the decoder can ignore the label (two moons: 86 % of samples read as
        # their class with z = 2, 100 % with z = 1; docs/results/estimators.md)
        table["model"]["z_dim"] = min(ModelConfig.z_dim, max(1, d - 1))
        return table
