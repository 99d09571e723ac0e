"""Adversarial Autoencoders (Makhzani et al., arXiv:1511.05644) on PyTorch.

>>> import aae
>>> model = aae.load("runs/demo")        # doctest: +SKIP
>>> images = model.generate(16)          # doctest: +SKIP
"""

__version__ = "0.1.0"

from .io import load  # noqa: E402
from .model import AdversarialAutoencoder  # noqa: E402

__all__ = ["AdversarialAutoencoder", "load", "__version__"]
