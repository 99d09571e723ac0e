"""Typed configs, read from plain TOML files with dotted overrides.

An experiment is four tables, ``[model]``, ``[train]``, ``[data]`` and ``[eval]``; every key
has a default (the paper's MNIST setting where the paper gives one), so a config file only
says what differs. Each key's documentation, allowed values and range live beside it (the
README's key table and ``aae train --help`` are generated from them), and every check, of one
key or across keys, runs when the config is loaded: a bad value is one line naming the key,
the value and what is allowed, before any data is read.

>>> from aae.config import load_config
>>> cfg = load_config(None, overrides=["model.z_dim=8", "train.epochs=3"])
>>> cfg.model.z_dim, cfg.train.epochs
(8, 3)
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..model.phases import RATE_GROUPS
from ..model.regimes import REGIMES
from .keys import key

CONFIG_DIR = Path(__file__).parent.parent / "configs"
MAX_WIDTH, MAX_LAYERS, MAX_CLASSES = 65_536, 100, 10_000
"""the largest layer or code, the most layers (or milestones), the most classes or clusters"""
MAX_EPOCHS, MAX_SIZE, MAX_SHIFT, MAX_WEIGHT = 100_000, 1_000_000_000, 32, 1e6
"""the most epochs, images (batch, labels, subsets), pixels of shift, and the largest weight or radius"""
MAX_SEED = 2**32 - 1
"""seeds are what numpy's RandomState takes: 0 .. 2**32 - 1"""
MAX_WEIGHTS = 200_000_000
"""the most weights a model may have (800 MB of float32; training keeps about four copies)"""
MAX_VALUES, MAX_GRID = 100_000_000, 10_000
"""the most values (samples x features) one call may generate, and the most images in one PNG grid"""


@dataclass
class ModelConfig:
    regime: str = key(
        "unsupervised",
        "where the label goes and which heads the code has (see the regime table)",
        choices=tuple(REGIMES),
    )
    objective: str = key(
        "aae",
        "aae: the adversarial autoencoder; vae: the ELBO on the same networks (needs the "
        "gaussian encoder); ae: no regularization; classifier: the encoder's q(y|x) alone, trained on "
        "the labels and the y head's terms below (the paper's NN baseline, NN+VAT, IMSAT)",
        choices=("aae", "vae", "ae", "classifier"),
    )
    encoder: str = key(
        "deterministic",
        "q(z|x): deterministic, gaussian (reparametrization) or universal (x plus noise)",
        choices=("deterministic", "gaussian", "universal"),
    )
    net: str = key(
        "mlp",
        "networks: mlp (the paper's), or conv for images (strided convolutions in, transposed out; beyond the paper)",
        choices=("mlp", "conv"),
    )
    channels: int = key(32, "conv: channels of the first convolution, doubled at each stride-2 stage", low=1, high=256)
    z_dim: int = key(2, "size of the style code z (the map's dimension n for dim_reduction)", low=1, high=MAX_WIDTH)
    n_classes: int = key(10, "classes, or the clusters m of the categorical head", low=1, high=MAX_CLASSES)
    hidden: list[int] = key(
        doc="encoder hidden layers; the decoder mirrors them",
        factory=lambda: [1000, 1000],
        low=1,
        high=MAX_WIDTH,
        longest=MAX_LAYERS,
    )
    disc_hidden: list[int] = key(
        doc="discriminator hidden layers", factory=lambda: [1000, 1000], low=1, high=MAX_WIDTH, longest=MAX_LAYERS
    )
    noise_dim: int = key(100, "universal encoder: size of the N(0, I) noise read beside x", low=1, high=MAX_WIDTH)
    output: str = key(
        "bernoulli",
        "bernoulli (sigmoid, cross-entropy; data in [0, 1]) or gaussian (linear, squared error)",
        choices=("bernoulli", "gaussian"),
    )
    encoder_batch_norm: bool = key(False, "batch normalization before each ReLU of the encoder")
    dropout: float = key(
        0.0, "dropout after each hidden ReLU of every network, in training only (beyond the paper)", low=0, below=1
    )
    prior: dict[str, Any] = key(
        doc="p(z): a table with name = gaussian (std), mixture (n_modes, radius, radial_std, "
        "tangential_std), swiss_roll (n_parts, scale, turns, noise) or uniform (low, high); "
        "a function is passed as an object (name = callable records its name, never imported)",
        factory=lambda: {"name": "gaussian"},
    )
    label_to_discriminator: bool = key(
        False, "the z discriminator also reads the one-hot label (supervised: z then cannot carry the class)"
    )
    label_part_weight: float = key(
        0.0,
        "label-conditioned: weight of the cross-entropy of each labeled code's own part of the prior, "
        "read from the parts' densities, in the generator step (beyond the paper)",
        low=0,
        high=MAX_WEIGHT,
    )
    y_regularizer: str = key(
        "adversary",
        "y head: adversary (a discriminator matches q(y) to Cat, the paper) or "
        "imsat (no y discriminator; the decoder reads q(y|x) held fixed, and the two "
        "mutual-information weights below train it, as in IMSAT)",
        choices=("adversary", "imsat"),
    )
    vat_weight: float = key(
        0.0,
        "y head: weight of virtual adversarial training of q(y|x) on the unlabeled batch (label_conditioned: "
        "of the code's part posterior under the prior; beyond the paper)",
        low=0,
        high=MAX_WEIGHT,
    )
    vat_eps: float = key(
        2.0,
        "y head: VAT radius in input units (MNIST 2, 8x8 digits 0.3), or with vat_knn the "
        "factor of each image's k-th neighbour distance",
        above=0,
        high=MAX_WEIGHT,
    )
    vat_knn: int = key(
        0,
        "k > 0: each image's VAT radius is vat_eps times its distance to its k-th nearest "
        "training image (IMSAT's rule)",
        low=0,
        high=10_000,
    )
    vat_scale: str = key(
        "neighbour",
        "with vat_knn: neighbour (vat_eps times each image's k-th neighbour distance) or spread "
        "(the same radii rescaled so that their median is vat_eps times the median distance "
        "between training images: the radius follows the data's spread, not its sampling density)",
        choices=("neighbour", "spread"),
    )
    y_marginal_weight: float = key(
        0.0, "y head: weight of KL(batch mean of q(y|x) || Cat) (beyond the paper)", low=0, high=MAX_WEIGHT
    )
    y_entropy_weight: float = key(
        0.0,
        "y head: weight of the mean entropy of q(y|x) (with the above: IMSAT's mutual information)",
        low=0,
        high=MAX_WEIGHT,
    )
    y_invariance_weight: float = key(
        0.0,
        "y head: weight of KL(q(y|x) || q(y|T(x))) on the unlabeled batch, T a random rotation of each "
        "image by up to 15 degrees and shift by up to 1/14 of its side (2 pixels on MNIST), so that "
        "q(y|x) ignores them (label_conditioned: the code's part posterior under the prior; beyond the paper)",
        low=0,
        high=MAX_WEIGHT,
    )
    eta: float = key(
        1.0, "dim_reduction: cluster heads closer than eta are penalized (Section 7)", low=0, high=MAX_WEIGHT
    )
    head_penalty: float = key(1.0, "dim_reduction: weight of the cluster-head distance penalty", low=0, high=MAX_WEIGHT)
    kl_free_bits: float = key(
        0.0,
        "vae: free bits, the nats of KL each code dimension carries unpenalized (max(free_bits, KL_d) over "
        "the batch; against a non-Gaussian prior, of the whole code), so that no dimension collapses onto "
        "the prior (beyond the paper)",
        low=0,
        high=MAX_WEIGHT,
    )


@dataclass
class TrainConfig:
    epochs: int = key(50, "epochs", low=1, high=MAX_EPOCHS)
    batch_size: int = key(
        100, "minibatch size (the classification phase's labeled minibatch too)", low=1, high=MAX_SIZE
    )
    optimizer: str = key(
        "adam", "adam (betas 0.5, 0.999) or sgd (momentum 0.9, as in the paper)", choices=("adam", "sgd")
    )
    lr: dict[str, float] = key(
        doc="learning rate per parameter group the phases step: reconstruction (encoder and decoder), "
        "discriminator, generator (the encoder against the discriminators, with the y head's terms), "
        "classification (the encoder on labels)",
        factory=lambda: dict.fromkeys(RATE_GROUPS, 1e-3),
        above=0,
        high=10,
    )
    lr_milestones: list[int] = key(
        doc="epochs at which every learning rate is multiplied by lr_gamma",
        factory=list,
        low=1,
        high=MAX_EPOCHS,
        longest=MAX_LAYERS,
    )
    lr_gamma: float = key(0.1, "learning-rate decay factor at each milestone", above=0, high=1)
    shift: int = key(
        0,
        "augmentation: each training image moves by a random whole number of pixels in [-shift, "
        "shift] along each axis, drawn anew each step (beyond the paper)",
        low=0,
        high=MAX_SHIFT,
    )
    ema: float = key(
        0.0,
        "decay of a moving average of the weights; when > 0 the average is what is measured "
        "and saved (0.999: ~1000 steps)",
        low=0,
        below=1,
    )
    select_by: str = key(
        "",
        "early stopping: the per-epoch metric whose lowest epoch is the result (valid_error, the error on "
        "the labeled validation images; valid_mmd, their codes' MMD to the prior); empty keeps the last",
        choices=("", "valid_error", "valid_mmd"),
    )
    seed: int = key(
        0,
        "seeds torch: a CPU run repeats bit for bit with the same code, machine and thread count",
        low=0,
        high=MAX_SEED,
    )
    eval_every: int = key(1, "epochs between per-epoch evaluations", low=1, high=MAX_EPOCHS)
    precision: str = key(
        "fp32",
        "the training steps' matrix products: fp32, bf16 (autocast; losses, weights and "
        "optimizer state stay float32), or auto: bf16 where the hardware has bf16 matrix units "
        "(CPU amx_bf16 / avx512_bf16, CUDA compute capability 8.0 or more), else fp32; fp32 by default, "
        "the precision of the bundled recipes' records",
        choices=("auto", "fp32", "bf16"),
    )


@dataclass
class DataConfig:
    name: str = key(
        "mnist",
        "mnist, digits, svhn, a .npy/.npz file, a directory of IDX files in MNIST's layout, or a folder of pictures",
    )
    image_size: int | list[int] | None = key(
        None,
        "a picture folder's images resized to [height, width], or a side (None: they must share one size)",
        low=4,
        high=4096,
    )
    data_dir: str | None = key(None, "where data sets live (default $AAE_DATA_DIR, else ~/.cache/aae)")
    download: bool = key(True, "download MNIST if it is missing")
    n_labeled: int | None = key(None, "training labels kept, balanced across classes (None: all)", low=0, high=MAX_SIZE)
    label_seed: int = key(0, "which labeled images (and validation split) are drawn", low=0, high=MAX_SEED)
    valid_size: int | None = key(
        None, "validation images carved from the training set (None: 10000 for MNIST)", low=0, high=MAX_SIZE
    )
    subset: int | None = key(None, "train on the first N training images only (quick runs)", low=1, high=MAX_SIZE)


@dataclass
class EvalConfig:
    tta_shift: int = key(
        0,
        "q(y|x) is measured as its mean over every shift of the image by up to this many pixels (beyond the paper)",
        low=0,
        high=MAX_SHIFT,
    )


@dataclass
class ExperimentConfig:
    name: str = key("experiment", "the experiment's name")
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


SECTIONS = {"model": ModelConfig, "train": TrainConfig, "data": DataConfig, "eval": EvalConfig}
