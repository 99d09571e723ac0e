"""Tests for aae.data.augment: shifts, translations, rotations, and training on shifted images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aae.data.augment import image_shape_of, random_affine, random_shift, translate
from aae.errors import ConfigError, DataError
from aae.training.trainer import Trainer
from conftest import build


@pytest.mark.parametrize("shape", [(8, 8, 1), (5, 5, 3)])
def test_random_shift_translates_each_image_by_its_own_offset_within_range(shape):
    h, w, c = shape
    images = torch.rand(40, h, w, c) + 1  # no zeros, so the zero fill shows where the image moved out
    shifted = random_shift(images.reshape(40, -1), 2, shape).reshape(40, h, w, c)
    offsets = set()
    for original, moved in zip(images, shifted):
        fits = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.equal(
                moved,
                torch.roll(torch.nn.functional.pad(original, (0, 0, 2, 2, 2, 2)), (dy, dx), (0, 1))[
                    2 : 2 + h, 2 : 2 + w
                ],
            )
        ]
        assert len(fits) == 1
        offsets.add(fits[0])
    assert len(offsets) > 5  # each image draws its own offset


def test_translate_takes_pixel_i_plus_dy_j_plus_dx_and_fills_with_zeros():
    image = torch.arange(1, 17, dtype=torch.float32).reshape(1, 4, 4)
    moved = translate(image.reshape(1, -1), 1, -1, 2, (4, 4, 1)).reshape(4, 4)
    assert moved[0, 1] == image[0, 1, 0] and moved[2, 3] == image[0, 3, 2]
    assert moved[3].eq(0).all() and moved[:, 0].eq(0).all()
    # one offset per image, as tensors (n, 1)
    both = translate(
        torch.cat([image, image]).reshape(2, -1), torch.tensor([[0], [1]]), torch.tensor([[0], [-1]]), 1, (4, 4, 1)
    )
    assert torch.equal(both[0], image.reshape(-1)) and torch.equal(both[1], moved.reshape(-1))


def test_image_shape_of_flattened_grey_and_colour_squares():
    assert image_shape_of(64) == (8, 8, 1) and image_shape_of(3072) == (32, 32, 3)
    with pytest.raises(DataError, match="70 features are not a square image"):
        image_shape_of(70)


def _centre_of_mass(images: torch.Tensor, side: int) -> torch.Tensor:
    grid = torch.arange(side, dtype=torch.float32)
    mass = images.reshape(-1, side, side)
    total = mass.sum((1, 2))
    return torch.stack([(mass.sum(2) * grid).sum(1) / total, (mass.sum(1) * grid).sum(1) / total], 1)


def test_random_affine_is_the_identity_at_zero_and_moves_each_image_its_own_way():
    torch.manual_seed(0)
    images = torch.zeros(200, 12, 12)
    images[:, 4:8, 4:8] = 1  # a centred square, far from the border
    x = images.reshape(200, -1)
    assert torch.allclose(random_affine(x, 0.0, 0.0, (12, 12, 1)), x, atol=1e-6)
    moved = _centre_of_mass(random_affine(x, 0.0, 1.5, (12, 12, 1)), 12) - 5.5
    assert moved.abs().max() <= 1.5 + 1e-4 and moved.abs().max() > 1.2  # within range, and reaching it
    assert len({tuple(m) for m in moved.round(decimals=2).tolist()}) > 150  # each image its own offset
    # rotation about the centre: a dot keeps its distance to the centre, at its own angle per image
    dot = torch.zeros(200, 21, 21)
    dot[:, 10, 16] = 1
    turned = _centre_of_mass(random_affine(dot.reshape(200, -1), 30.0, 0.0, (21, 21, 1)), 21) - 10
    radius, angle = turned.norm(dim=1), torch.atan2(turned[:, 0], turned[:, 1]).rad2deg()
    assert torch.allclose(radius, torch.full_like(radius, 6.0), atol=0.3)
    assert angle.abs().max() <= 30.5 and angle.abs().max() > 25 and angle.std() > 10


def test_shift_trains_on_shifted_images_and_is_refused_where_it_cannot_apply(digits, tiny_config):
    originals = torch.as_tensor(digits.train.x)
    labels = np.where(np.arange(len(digits.train)) < 100, digits.train.y, -1)

    def unseen_images(shift: int) -> int:
        """how many images the encoder read in one epoch that are not training images"""
        cfg = tiny_config("model.regime=semi_supervised", f"train.shift={shift}", "train.epochs=1")
        trainer, seen = Trainer(build(cfg), cfg), []
        trainer.model.encode = (lambda encode: lambda x, **k: seen.append(x) or encode(x, **k))(trainer.model.encode)
        trainer.fit(digits.train.x, labels)
        return sum(int((~(x[:, None, :] == originals[None]).all(-1).any(-1)).sum()) for x in seen)

    assert unseen_images(0) == 0
    assert unseen_images(1) > 0
    cfg = tiny_config("model.regime=semi_supervised", "train.shift=1")
    with pytest.raises(DataError, match="not a square image"):
        Trainer(build(cfg, x_dim=70), cfg)
    with pytest.raises(ConfigError, match="train.shift = -1"):
        Trainer(build(cfg), tiny_config("train.shift=-1"))
