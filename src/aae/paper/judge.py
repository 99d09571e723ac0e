"""An independent image classifier, to judge generated images (is a "7" decoded by the
supervised AAE read as a 7?). A small CNN, unrelated to the AAE's MLPs, trained once per data
set and cached as safetensors."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save
from torch import nn
from tqdm.auto import tqdm

from ..data.splits import Dataset
from ..errors import DataError
from ..files import atomic_write

log = logging.getLogger("aae")


class ConvClassifier(nn.Module):
    """Two 3x3 conv + max-pool blocks, then a 128-unit layer; returns logits."""

    def __init__(self, image_shape: tuple[int, ...], n_classes: int):
        super().__init__()
        self.h, self.w = image_shape[:2]
        self.c = image_shape[2] if len(image_shape) == 3 else 1
        self.features = nn.Sequential(
            nn.Conv2d(self.c, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.head = nn.Sequential(
            nn.Linear(64 * (self.h // 4) * (self.w // 4), 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(-1, self.h, self.w, self.c).permute(0, 3, 1, 2)
        return self.head(self.features(x))

    @torch.no_grad()
    def predict(self, x, batch_size: int = 1000) -> np.ndarray:
        self.eval()
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        return torch.cat([self(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)]).numpy()


def train_classifier(train: Dataset, *, epochs: int = 4, seed: int = 0, progress: bool = True) -> ConvClassifier:
    """Fit a :class:`ConvClassifier` on a labeled image data set (Adam, batch 128)."""
    if train.image_shape is None or train.y is None or (train.y < 0).any():
        raise DataError(
            f"the classifier needs labeled images; data set {train.name!r} has "
            f"{'no image shape' if train.image_shape is None else 'unlabeled points'}"
        )
    torch.manual_seed(seed)
    net = ConvClassifier(train.image_shape, train.n_classes)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x, y = torch.as_tensor(train.x), torch.as_tensor(train.y)
    steps = len(x) // 128
    bar = tqdm(total=epochs * steps, desc="classifier", disable=not progress, unit="step")
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(x))
        for i in range(steps):
            idx = perm[i * 128 : (i + 1) * 128]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            bar.update()
    bar.close()
    return net.eval()


def cached_classifier(train: Dataset, path: str | Path, **kwargs) -> ConvClassifier:
    """Load the classifier at ``path`` (safetensors), or train it and save it there."""
    path = Path(path)
    net = ConvClassifier(train.image_shape, train.n_classes)
    if path.exists():
        try:
            net.load_state_dict(load_file(path))
            return net.eval()
        except Exception as exc:  # a corrupt cache is rebuilt, not fatal: it holds nothing else
            log.warning("%s is unreadable (%s); training the classifier again", path, exc)
    net = train_classifier(train, **kwargs)
    atomic_write(path, save({k: v.contiguous() for k, v in net.state_dict().items()}))
    return net
