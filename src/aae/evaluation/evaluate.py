"""What a trained model is measured by. Which metrics apply follows from what the model has (a
categorical head, a label route, cluster heads), never its name."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..config.schema import ExperimentConfig
from ..data.augment import shifted_views
from ..data.splits import Dataset, Splits
from ..errors import ConfigError
from ..model.autoencoder import AdversarialAutoencoder
from ..model.losses import reconstruction_loss
from . import metrics


def log_mean_softmax(views: list[torch.Tensor]) -> torch.Tensor:
    """log of the softmax of each (n, m) logit tensor in ``views``, averaged over the views, in
    float64 and exact both where q(y|x) is near 0 and where it is near 1. A sure head has logit
    margins past 37, where even float64's softmax (and log_softmax) is exactly 1 (0) for hundreds
    of images; at each view's top class, 1 - q = sigmoid(logsumexp of the other logits - the top
    logit) keeps them apart (only the top class can have q > 1/2)."""
    logits = torch.stack(views).double()  # (k, n, m)
    log_q = logits.log_softmax(2).logsumexp(0) - np.log(len(views))
    top = logits.argmax(2, keepdim=True)
    rest = logits.scatter(2, top, -np.inf).logsumexp(2, keepdim=True) - logits.gather(2, top)  # log((1 - q) / q)
    one_minus_q = (1 - logits.softmax(2)).scatter(2, top, rest.sigmoid())
    return torch.where(log_q > -np.log(2), torch.log1p(-one_minus_q.mean(0)), log_q)


@torch.inference_mode()
def encode(
    model: AdversarialAutoencoder,
    x: np.ndarray,
    *,
    sample: bool = True,
    tta_shift: int = 0,
    log: bool = False,
    batch_size: int = 2000,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Codes z and, where the model has a y head, q(y|x), in batches; with ``tta_shift`` (config
    ``eval.tta_shift``) q(y|x) is averaged over every translation of x by up to that many pixels.
    With ``log``, log q(y|x) in float64 (`log_mean_softmax`): what ranks images by confidence."""
    if tta_shift < 0:
        raise ConfigError(f"eval.tta_shift = {tta_shift} must be 0 or more pixels")
    zs, ys = [], []
    for i in range(0, len(x), batch_size):
        xb = torch.as_tensor(x[i : i + batch_size], device=model.device)
        codes = model.encode(xb, sample=sample)
        zs.append(codes.z.cpu().numpy())
        if model.has_y_head:
            views = [codes.y_logits]
            if tta_shift:
                views = [
                    model.encode(v, sample=False).y_logits for v in shifted_views(xb, tta_shift, model.image_shape)
                ]
            if log:
                ys.append(log_mean_softmax(views).cpu().numpy())
            else:
                ys.append((sum(v.softmax(1) for v in views) / len(views)).cpu().numpy())
    return np.concatenate(zs), (np.concatenate(ys) if ys else None)


@torch.inference_mode()
def embed(model: AdversarialAutoencoder, x: np.ndarray, batch_size: int = 2000) -> np.ndarray:
    """The representation the decoder reads for ``x`` without a label: W_C y + z for a model with
    cluster heads (Section 7), else the code z (posterior mean / zero noise)."""
    out = []
    for i in range(0, len(x), batch_size):
        codes = model.encode(torch.as_tensor(x[i : i + batch_size], device=model.device), sample=False)
        out.append((model.representation(codes) if model.has_cluster_heads else codes.z).cpu().numpy())
    return np.concatenate(out)


@torch.inference_mode()
def mean_reconstruction_loss(model: AdversarialAutoencoder, data: Dataset, batch_size: int = 2000) -> float:
    total = 0.0
    for i in range(0, len(data), batch_size):
        x = torch.as_tensor(data.x[i : i + batch_size], device=model.device)
        labels = torch.as_tensor(data.y[i : i + batch_size], device=model.device) if data.y is not None else None
        codes = model.encode(x, sample=False)
        total += reconstruction_loss(
            model.decode(model.representation(codes, labels)), x, model.config.output
        ).item() * len(x)
    return total / len(data)


def _label_metrics(model: AdversarialAutoencoder, z: np.ndarray, proba: np.ndarray | None, data: Dataset) -> dict:
    out = {}
    if data.y is None:
        return out
    if model.label_conditions_prior and model.prior.n_parts is not None:
        # the fraction of labeled codes that lie in their own class's part of the prior (Figures 4-5)
        labeled = data.y >= 0
        part = model.prior.assign_part(torch.as_tensor(z[labeled])).numpy()
        out["mode_accuracy"] = float((part == data.y[labeled]).mean())
    if proba is not None and proba.shape[1] == data.n_classes:
        out["error"] = metrics.classification_error(data.y, proba.argmax(1))
    return out


def _cluster_protocol_inputs(
    model: AdversarialAutoencoder, proba: np.ndarray, splits: Splits, cfg: ExperimentConfig
) -> tuple[np.ndarray, np.ndarray]:
    """What the paper's cluster protocol reads: log q(y|x) of the validation images (which rank
    each cluster's exemplar) and the test images' clusters, the argmax of their q(y|x) ``proba``."""
    return encode(model, splits.valid.x, tta_shift=cfg.eval.tta_shift, log=True)[1], proba.argmax(1)


def _cluster_metrics(
    model: AdversarialAutoencoder, proba: np.ndarray | None, splits: Splits, cfg: ExperimentConfig
) -> tuple[dict, np.ndarray | None]:
    """Unsupervised clustering (Section 6), and a categorical head trained without labels (the
    unsupervised map of Section 7): the paper's protocol and the usual scores, and the validation
    images' log q(y|x) that the protocol read (None where there are no clusters to score)."""
    test = splits.test
    unsupervised = not model.reads_labels or cfg.data.n_labeled == 0
    if proba is None or test.y is None or not unsupervised:
        return {}, None
    valid_logp, assign = _cluster_protocol_inputs(model, proba, splits, cfg)
    # cluster sizes against the equal share n / m a q(y) matching the uniform prior would give
    sizes = np.bincount(assign, minlength=proba.shape[1]) * proba.shape[1] / len(assign)
    scores = {
        "cluster_error": metrics.cluster_error_paper(valid_logp, splits.valid.y, assign, test.y),
        "cluster_error_majority": metrics.cluster_error_paper(
            valid_logp, splits.valid.y, assign, test.y, majority=True
        ),
        "hungarian_accuracy": metrics.hungarian_accuracy(test.y, assign),
        **metrics.cluster_scores(test.y, assign),
        "largest_cluster": float(sizes.max()),
        "smallest_cluster": float(sizes.min()),
    }
    return scores, valid_logp


def _valid_label_metrics(
    model: AdversarialAutoencoder, valid: Dataset, cfg: ExperimentConfig
) -> tuple[dict, np.ndarray]:
    """The label metrics of the labeled validation images, with the config's test-time shifts: what
    ``train.select_by`` stops on each epoch and what ``aae eval`` prints beside the test error, so
    that the two read the same figure; and the images' codes z (the shifts average q(y|x) only)."""
    z, proba = encode(model, valid.x, tta_shift=cfg.eval.tta_shift)
    return _label_metrics(model, z, proba, valid), z


def epoch_metrics(splits: Splits, cfg: ExperimentConfig, n: int = 2000) -> Callable[[AdversarialAutoencoder], dict]:
    """The cheap per-epoch metrics (logged each ``eval_every`` epochs): the code's MMD to the prior
    on ``n`` test points and, where labels give one, the test error (of the plain images), mode
    accuracy or cluster error, and the validation error that ``train.select_by`` reads."""
    test = splits.test

    def measure(model: AdversarialAutoencoder) -> dict:
        # the test set on the plain images only: it is watched, not chosen by; the final metrics and
        # the validation split that early stopping reads take the config's test-time shifts
        z, proba = encode(model, test.x)
        row = (
            {}
            if not model.has_decoder
            else {"test_mmd": metrics.mmd(z, model.prior.sample(len(z)).numpy(), max_points=n)}
        )
        row.update({f"test_{k}": v for k, v in _label_metrics(model, z, proba, test).items()})
        row.update({f"test_{k}": v for k, v in _cluster_metrics(model, proba, splits, cfg)[0].items()})
        valid, zv = splits.valid, None
        if (proba is not None or model.label_conditions_prior) and len(valid) and valid.y is not None:
            # what train.select_by can stop on, and a choice can be made by, without the test set
            scores, zv = _valid_label_metrics(model, valid, cfg)
            row.update({f"valid_{k}": v for k, v in scores.items()})
        if model.has_decoder and len(valid):  # the prior match, chosen by without the test set
            zv = zv[:n] if zv is not None else encode(model, valid.x[:n])[0]
            row["valid_mmd"] = metrics.mmd(zv, model.prior.sample(len(zv)).numpy(), max_points=n)
        return row

    return measure


def model_cluster_breakdown(model: AdversarialAutoencoder, splits: Splits, cfg: ExperimentConfig) -> list[dict]:
    """Each test cluster's classes and its labels by the paper's protocol and by validation
    majority (`aae.evaluation.metrics.cluster_breakdown`): which clusters the cluster error comes from."""
    if splits.test.y is None or splits.valid.y is None:
        raise ConfigError("a cluster breakdown needs labeled validation and test splits")
    proba = encode(model, splits.test.x, tta_shift=cfg.eval.tta_shift)[1]
    if proba is None:
        raise ConfigError(f"{cfg.name} has no categorical head q(y|x): there are no clusters to break down")
    valid_logp, assign = _cluster_protocol_inputs(model, proba, splits, cfg)
    return metrics.cluster_breakdown(valid_logp, splits.valid.y, assign, splits.test.y)


def final_metrics(model: AdversarialAutoencoder, splits: Splits, cfg: ExperimentConfig) -> dict:
    """The full evaluation on the test set (``aae eval``), and where the model classifies, its error
    on the labeled validation images too."""
    test = splits.test
    z, proba = encode(model, test.x, tta_shift=cfg.eval.tta_shift)
    out = (
        {}
        if not model.has_decoder
        else {  # a classifier baseline has no decoder and no prior
            "test_reconstruction": mean_reconstruction_loss(model, test),
            "test_mmd": metrics.mmd(z, model.prior.sample(len(z)).numpy(), max_points=2000),
        }
    )
    out.update({f"test_{k}": v for k, v in _label_metrics(model, z, proba, test).items()})
    clusters, valid_logp = _cluster_metrics(model, proba, splits, cfg)
    out.update({f"test_{k}": v for k, v in clusters.items()})
    valid = splits.valid
    if valid_logp is not None:
        # the paper's protocol within the validation split: its halves label each other's clusters
        out["valid_cluster_error"] = metrics.cluster_error_split_half(valid_logp, valid.y)
    if "test_error" in out and len(valid) and valid.y is not None:
        # the same error on the labeled validation images, measured the same way: what a choice of
        # evaluation (aae eval --tta-shift) can be judged by without the test set
        out["valid_error"] = _valid_label_metrics(model, valid, cfg)[0]["error"]
    if model.has_cluster_heads and valid.y is not None and test.y is not None:
        # how well the map r = W_C y + z keeps the classes apart (Section 7): a 1-nearest-neighbour
        # classifier on the map, the labeled validation images its reference set
        out["test_map_1nn_error"] = metrics.one_nn_error(embed(model, valid.x), valid.y, embed(model, test.x), test.y)
    return out
