"""Tests for aae.config.schema (with config_checks and config_docs): defaults, bundled and file configs, dotted
overrides, validation errors, the key table."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from aae.config.docs import KEY_TABLE, key_table, keys
from aae.config.load import bundled_configs, from_dict, load_config, tomllib
from aae.config.schema import CONFIG_DIR, DataConfig, EvalConfig, ExperimentConfig, ModelConfig, TrainConfig
from aae.data.sets import load
from aae.errors import ConfigError
from aae.experiment import prepare_data
from aae.model.phases import RATE_GROUPS
from conftest import build

# ----------------------------------------------------------------------------- defaults


def test_defaults_are_the_papers_mnist_setting():
    cfg = load_config(None)
    assert cfg == ExperimentConfig()
    m, t, d, e = cfg.model, cfg.train, cfg.data, cfg.eval
    assert (m.regime, m.objective, m.encoder, m.output) == ("unsupervised", "aae", "deterministic", "bernoulli")
    assert (m.z_dim, m.n_classes, m.hidden, m.disc_hidden) == (2, 10, [1000, 1000], [1000, 1000])
    assert m.prior == {"name": "gaussian"}
    assert (t.epochs, t.batch_size, t.optimizer, t.lr_milestones, t.seed) == (50, 100, "adam", [], 0)
    assert t.lr == {"reconstruction": 1e-3, "discriminator": 1e-3, "generator": 1e-3, "classification": 1e-3}
    assert (d.name, d.n_labeled, d.subset) == ("mnist", None, None)
    assert e.tta_shift == 0


def test_default_lists_and_tables_are_not_shared_between_instances():
    a, b = ModelConfig(), ModelConfig()
    a.hidden.append(5)
    a.prior["n_modes"] = 3
    assert b.hidden == [1000, 1000] and b.prior == {"name": "gaussian"}
    t1, t2 = TrainConfig(), TrainConfig()
    t1.lr["generator"] = 9.0
    assert t2.lr["generator"] == 1e-3


def test_to_dict_from_dict_round_trip():
    cfg = load_config("demo", ["train.lr.generator=2e-4", "data.n_labeled=100"])
    assert from_dict(cfg.to_dict()) == cfg
    assert set(cfg.to_dict()) == {"name", "model", "train", "data", "eval"}


# ----------------------------------------------------------------------------- loading


def test_load_bundled_config_by_name():
    """A bundled config is its file over the defaults: every key the file sets (a partial train.lr
    merged into the default rates), every other key as ExperimentConfig() has it."""
    defaults = ExperimentConfig().to_dict()
    for name in bundled_configs():
        cfg = load_config(name)
        assert cfg == load_config(CONFIG_DIR / f"{name}.toml")  # the name is the bundled file
        file, loaded = tomllib.loads((CONFIG_DIR / f"{name}.toml").read_text()), cfg.to_dict()
        assert loaded["name"] == file["name"] == name
        for section in ("model", "train", "data", "eval"):
            assert set(file.get(section, {})) <= set(defaults[section]), f"{name}: a key of [{section}] is unknown"
            for key, default in defaults[section].items():
                given = file.get(section, {}).get(key, default)
                expected = {**default, **given} if key == "lr" else given
                assert loaded[section][key] == expected, f"{name}: {section}.{key}"


def test_load_config_from_a_path(tmp_path: Path):
    path = tmp_path / "mine.toml"
    path.write_text(
        'name = "mine"\n[model]\nz_dim = 8\nhidden = [64, 32]\n[train]\nlr = { generator = 5e-4 }\n'
        '[data]\nname = "digits"\nsubset = 500\n'
    )
    cfg = load_config(path)
    assert load_config(str(path)) == cfg  # a str path works as well
    assert cfg.name == "mine"
    # the file's values act where they are documented to; what it leaves out is the default
    model = build(cfg)
    assert [m.out_features for m in model.encoder.trunk if isinstance(m, torch.nn.Linear)] == [64, 32]
    assert model.encode(torch.rand(3, 64)).z.shape == (3, 8)
    discriminator = [m.out_features for m in model.discriminators["z"].net if isinstance(m, torch.nn.Linear)]
    assert discriminator == [*ModelConfig().disc_hidden, 1]
    assert cfg.train.lr == {**TrainConfig().lr, "generator": 5e-4}
    splits = prepare_data(cfg, progress=False)  # digits' training split, cut to its first 500 images
    np.testing.assert_array_equal(splits.train.x, load("digits", progress=False).train.x[:500])


def test_unknown_config_name_lists_the_bundled_ones():
    with pytest.raises(ConfigError) as err:
        load_config("no_such_config")
    msg = str(err.value)
    assert "'no_such_config' not found" in msg
    for name in ("demo", "mnist_mixture_aae", "mnist_gaussian_vae"):
        assert name in msg


def test_missing_config_path_is_an_error_not_the_bundled_config_of_the_same_name(tmp_path: Path):
    # A typo in a directory must not silently train the bundled demo instead of the user's file.
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "typo_dir" / "demo.toml")


def test_invalid_toml_names_the_file(tmp_path: Path):
    path = tmp_path / "broken.toml"
    path.write_text("[model]\nz_dim = = 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and "not valid TOML" in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_section_in_a_file_is_rejected(tmp_path: Path):
    path = tmp_path / "typo.toml"
    path.write_text("[modle]\nz_dim = 3\n")
    with pytest.raises(
        ConfigError, match=r"unknown config key 'modle'; allowed in \[top level\]: name, model, train, data, eval"
    ):
        load_config(path)


def test_every_bundled_config_loads_and_builds_a_model():
    from aae.model.autoencoder import AdversarialAutoencoder

    names = bundled_configs()
    assert {
        "demo",
        "mnist_gaussian_aae",
        "mnist_gaussian_vae",
        "mnist_mixture_aae",
        "mnist_mixture_vae",
        "mnist_swiss_roll_aae",
        "mnist_swiss_roll_vae",
    } <= set(names)
    for name in names:
        cfg = load_config(name)
        assert cfg.name == name, f"{name}.toml sets name = {cfg.name!r}"
        shape = (32, 32, 3) if cfg.data.name == "svhn" else (28, 28, 1)
        d = shape[0] * shape[1] * shape[2]
        model = AdversarialAutoencoder(cfg.model, x_dim=d, image_shape=shape)
        assert model.x_dim == d and model.prior.dim == cfg.model.z_dim
        assert model.decode(model.representation(model.encode(torch.rand(2, d)), torch.tensor([0, 1]))).shape == (2, d)


# ----------------------------------------------------------------------------- overrides


def test_overrides_parse_ints_floats_bools_lists_tables_and_bare_words():
    cfg = load_config(
        None,
        [
            "model.z_dim=8",
            "model.vat_eps=0.5",
            "model.vat_weight=1",  # an int where a float is expected becomes a float
            "model.hidden=[64, 32]",
            "model.prior={name = 'gaussian', std = 2}",
            "model.regime=semi_supervised",  # a bare word is a string
            "train.lr_milestones=[3, 5]",
            "data.name=digits",
            "data.n_labeled=100",
            "train.epochs = 7",  # spaces around '=' are fine
        ],
    )
    assert cfg.model.z_dim == 8 and type(cfg.model.z_dim) is int
    assert cfg.model.vat_eps == 0.5
    assert cfg.model.vat_weight == 1.0 and type(cfg.model.vat_weight) is float
    assert cfg.model.hidden == [64, 32]
    assert cfg.model.prior == {"name": "gaussian", "std": 2}
    assert cfg.model.regime == "semi_supervised"
    assert cfg.train.lr_milestones == [3, 5]
    assert cfg.data.name == "digits" and cfg.data.n_labeled == 100
    assert cfg.train.epochs == 7


def test_overrides_apply_over_a_file_and_later_ones_win():
    cfg = load_config("demo", ["train.epochs=3", "model.hidden=[32]", "train.epochs=4"])
    assert cfg.train.epochs == 4
    assert cfg.model.hidden == [32]
    assert cfg.model.regime == "label_conditioned"  # the file's value stays where not overridden


def test_bare_word_with_slashes_and_dots_is_a_string():
    cfg = load_config(None, ["data.name=/some/where/file.npz", "data.data_dir=/tmp/data"])
    assert cfg.data.name == "/some/where/file.npz" and cfg.data.data_dir == "/tmp/data"


def test_optional_int_accepts_null_like_default_and_ints():
    assert load_config(None, ["data.valid_size=0"]).data.valid_size == 0
    assert load_config(None).data.valid_size is None


@pytest.mark.parametrize("item", ["train.epochs", "=5", " =5", "train.epochs5"])
def test_bad_override_syntax(item):
    with pytest.raises(ConfigError, match="must look like section.key=value"):
        load_config(None, [item])


def test_unknown_key_names_the_key_and_lists_allowed_keys():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["model.hiden=[3]"])
    msg = str(err.value)
    assert "'model.hiden'" in msg
    assert "allowed in [model]:" in msg
    for key in (f.name for f in dataclasses.fields(ModelConfig)):
        assert key in msg


def test_unknown_key_in_train_lists_train_keys():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["train.learning_rate=0.1"])
    msg = str(err.value)
    assert "'train.learning_rate'" in msg and "allowed in [train]:" in msg
    assert all(f.name in msg for f in dataclasses.fields(TrainConfig))


@pytest.mark.parametrize(
    "item, key, expect",
    [
        ("model.z_dim=2.5", "model.z_dim", "expected int"),
        ("model.z_dim=true", "model.z_dim", "expected int"),
        ("model.z_dim='eight'", "model.z_dim", "expected int"),
        ("data.download=1", "data.download", "expected true or false"),
        ("model.hidden=32", "model.hidden", "expected a list"),
        ("model.hidden=[32.5]", "model.hidden", "expected int"),
        ("model.hidden=[a]", "model.hidden", "expected a list"),  # not TOML: a bare string, not a list
        ("train.lr=0.1", "train.lr", "expected a table"),
        ("train.lr.generator='fast'", "train.lr.generator", "expected a number"),
        ("train.lr.generator=true", "train.lr.generator", "expected a number"),
        ("data.n_labeled=true", "data.n_labeled", "expected int or none"),
        ("data.subset=1.5", "data.subset", "expected int or none"),
        ("model.vat_eps=[1]", "model.vat_eps", "expected a number"),
        ("model.prior=gaussian", "model.prior", "expected a table"),
        ("model=3", "model", "must be a table"),
    ],
)
def test_wrong_type_names_the_key(item, key, expect):
    with pytest.raises(ConfigError) as err:
        load_config(None, [item])
    msg = str(err.value)
    assert msg.startswith(key) or f"{key} " in msg or f"'{key}'" in msg
    assert expect in msg


@pytest.mark.parametrize(
    "key, bad",
    [
        ("model.encoder", "foo"),
        ("model.regime", "fully_supervised"),
        ("model.objective", "gan"),
        ("model.output", "poisson"),
        ("train.optimizer", "rmsprop"),
    ],
)
def test_bad_choice_lists_the_allowed_values(key, bad):
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"{key}={bad}"])
    msg = str(err.value)
    assert f"{key} = '{bad}' is not allowed" in msg
    choices = next(f.metadata["choices"] for name, _, f in keys() if name == key)
    assert msg.endswith("choose one of: " + ", ".join(repr(c) for c in choices))


def test_encoder_foo_message():
    with pytest.raises(
        ConfigError,
        match=r"model\.encoder = 'foo' is not allowed; choose one of: 'deterministic', "
        r"'gaussian', 'universal'$",
    ):
        load_config(None, ["model.encoder=foo"])


# ----------------------------------------------------------------------------- train.lr


def test_partial_lr_table_merges_with_the_defaults():
    cfg = load_config(None, ["train.lr={generator = 2e-4}"])
    assert cfg.train.lr == {"reconstruction": 1e-3, "discriminator": 1e-3, "generator": 2e-4, "classification": 1e-3}
    cfg = load_config(None, ["train.lr.discriminator=1", "train.lr.classification=3e-3"])
    assert cfg.train.lr == {"reconstruction": 1e-3, "discriminator": 1.0, "generator": 1e-3, "classification": 3e-3}
    assert type(cfg.train.lr["discriminator"]) is float


def test_lr_from_file_and_override_merge(tmp_path: Path):
    path = tmp_path / "lr.toml"
    path.write_text("[train]\nlr = { reconstruction = 1e-4, generator = 1e-4 }\n")
    cfg = load_config(path, ["train.lr.generator=5e-5"])
    assert cfg.train.lr == {"reconstruction": 1e-4, "discriminator": 1e-3, "generator": 5e-5, "classification": 1e-3}


def test_unknown_lr_phase_is_rejected():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["train.lr.elbo=1e-3"])
    msg = str(err.value)
    assert "train.lr has unknown parameter group 'elbo'" in msg
    assert msg.endswith("allowed: " + ", ".join(RATE_GROUPS))


# ----------------------------------------------------------------------------- prior table


def test_prior_override_with_same_name_merges_arguments():
    cfg = load_config("demo", ["model.prior.n_modes=12"])
    assert cfg.model.prior == {"name": "mixture", "n_modes": 12}
    cfg = load_config("demo", ["model.prior.radius=2.0"])
    assert cfg.model.prior == {"name": "mixture", "n_modes": 10, "radius": 2.0}


def test_prior_override_with_another_name_replaces_the_table():
    cfg = load_config("demo", ["model.prior.name=gaussian"])
    assert cfg.model.prior == {"name": "gaussian"}  # no n_modes left over from the mixture
    cfg = load_config("demo", ["model.prior={name = 'swiss_roll'}"])
    assert cfg.model.prior == {"name": "swiss_roll"}
    from aae.model.autoencoder import AdversarialAutoencoder

    model = AdversarialAutoencoder(
        load_config("demo", ["model.prior.name=gaussian", "model.hidden=[8]", "model.disc_hidden=[8]"]).model, x_dim=64
    )
    assert type(model.prior).__name__ == "Gaussian"


def test_prior_rename_then_argument_in_one_command_line():
    cfg = load_config("demo", ["model.prior.name=gaussian", "model.prior.std=2.0"])
    assert cfg.model.prior == {"name": "gaussian", "std": 2.0}


def test_base_table_is_not_mutated():
    base = {"model": {"prior": {"name": "mixture", "n_modes": 10}}}
    cfg = load_config(None, ["model.prior.n_modes=3"], base=base)
    assert cfg.model.prior == {"name": "mixture", "n_modes": 3}
    assert base == {"model": {"prior": {"name": "mixture", "n_modes": 10}}}


def test_data_and_eval_keys_validate():
    cfg = load_config(None, ["eval.tta_shift=1", "data.label_seed=3", "data.download=false"])
    assert cfg.eval == EvalConfig(tta_shift=1)
    assert cfg.data == DataConfig(label_seed=3, download=False)
    with pytest.raises(ConfigError, match="unknown config key 'eval.points'"):
        load_config(None, ["eval.points=5"])


# ----------------------------------------------------------------------------- ranges and cross-key checks


@pytest.mark.parametrize(
    "item, allowed",
    [
        ("train.batch_size=0", "1 <= train.batch_size"),
        ("train.epochs=0", "1 <= train.epochs"),
        ("train.eval_every=0", "1 <= train.eval_every"),
        ("model.z_dim=0", "1 <= model.z_dim"),
        ("model.z_dim=-2", "1 <= model.z_dim"),
        ("model.hidden=[-5]", "1 <= model.hidden"),
        ("model.hidden=[0]", "1 <= model.hidden"),
        ("model.n_classes=0", "1 <= model.n_classes"),
        ("train.lr.generator=-1e-3", "0 < train.lr"),
        ("train.lr.generator=1e6", "train.lr <= 10"),
        ("train.ema=1.5", "0 <= train.ema < 1"),
        ("train.lr_gamma=0", "0 < train.lr_gamma <= 1"),
        ("data.subset=-100", "1 <= data.subset"),
        ("data.n_labeled=-1", "0 <= data.n_labeled"),
        ("train.shift=-1", "0 <= train.shift"),
        ("eval.tta_shift=-1", "0 <= eval.tta_shift"),
        ("model.vat_eps=0", "0 < model.vat_eps"),
        ("train.seed=-3", "0 <= train.seed"),
        ("train.lr_milestones=[0]", "1 <= train.lr_milestones"),
    ],
)
def test_a_value_out_of_range_names_the_key_the_value_and_the_range(item, allowed):
    with pytest.raises(ConfigError) as err:
        load_config(None, [item])
    msg = str(err.value)
    name = item.split("=")[0]
    assert msg.startswith("train.lr" if name.startswith("train.lr.") else name) and "is not allowed" in msg
    assert allowed in msg and "\n" not in msg


@pytest.mark.parametrize(
    "items, expect",
    [
        (["model.objective=vae"], "needs model.encoder = 'gaussian'"),
        (["model.objective=classifier"], "needs the semi_supervised, dim_reduction or clustering regime"),
        (["model.objective=classifier", "model.regime=clustering"], "IMSAT's objective"),
        (["model.y_regularizer=imsat"], "needs a regime with a y head"),
        (
            ["model.y_regularizer=imsat", "model.regime=clustering"],
            "y_marginal_weight > 0 and model.y_entropy_weight > 0",
        ),
        (["model.label_to_discriminator=true"], "needs a regime that reads labels"),
        (["model.label_part_weight=1"], "needs the label_conditioned regime"),
        (["model.regime=label_conditioned", "model.label_part_weight=1"], "needs a prior with parts"),
        (["model.y_invariance_weight=1", "model.regime=supervised"], "y head or the label_conditioned regime"),
        (["model.regime=label_conditioned", "model.vat_weight=1"], "vat_weight needs a prior with parts"),
        (
            ["model.regime=label_conditioned", "model.prior={name='mixture'}", "model.y_entropy_weight=1"],
            "has no y head",
        ),
        (
            ["model.regime=label_conditioned", "model.prior={name='mixture', n_modes=5}"],
            "5 parts but model.n_classes = 10",
        ),
        (["model.prior={name='gaussian', std=-1}"], "model.prior"),
        (["model.prior={name='nope'}"], "unknown prior 'nope'"),
    ],
)
def test_a_bad_combination_is_refused_when_the_config_is_loaded(items, expect):
    with pytest.raises(ConfigError, match=expect) as err:
        load_config(None, items)
    assert "\n" not in str(err.value)


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path: Path):
    path = tmp_path / "latin1.toml"
    path.write_bytes("# caf\xe9\n[model]\nz_dim = 3\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not a UTF-8 text file"):
        load_config(path)


def test_configs_saved_by_earlier_versions_map_to_todays_keys():
    old = {
        "model": {
            "regime": "clustering",
            "y_adversary": False,
            "reconstruction_trains_y": False,
            "y_marginal_weight": 0.4,
            "y_entropy_weight": 0.1,
            "input_dropout": 0.0,
        },
        "train": {"labeled_batch_size": 100, "progress": False, "betas": [0.5, 0.999]},
    }
    cfg = from_dict(old, strict=False)
    assert cfg.model.y_regularizer == "imsat"
    nn = from_dict({"model": {"regime": "semi_supervised", "objective": "classifier", "vat_weight": 3.0}}, strict=False)
    assert (nn.model.objective, nn.model.vat_weight) == ("classifier", 0.0)  # the old NN ignored VAT
    vat = from_dict({"model": {"regime": "semi_supervised", "objective": "vat", "vat_weight": 3.0}}, strict=False)
    assert (vat.model.objective, vat.model.vat_weight) == ("classifier", 3.0)
    # a config saved by today's version (it records y_regularizer) is today's classifier, with its terms
    imsat = load_config(
        None,
        [
            "model.regime=clustering",
            "model.objective=classifier",
            "model.vat_weight=1",
            "model.y_marginal_weight=0.4",
            "model.y_entropy_weight=0.1",
        ],
    )
    assert from_dict(json.loads(imsat.to_json()), strict=False) == imsat


def test_every_key_is_documented_and_the_readme_table_is_the_generated_one():
    # the config surface stays small: every new key must earn its place (49: label_part_weight)
    assert len(keys()) <= 49
    assert all(f.metadata["doc"] for _, _, f in keys())
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    found = KEY_TABLE.search(readme)
    assert found, "README.md lacks the config-keys markers"
    assert found.group(0) == found.group(1) + key_table() + "\n" + found.group(2), (
        "README's key table is stale: run `make readme`"
    )
