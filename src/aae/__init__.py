"""Adversarial Autoencoders (Makhzani et al., arXiv:1511.05644) on PyTorch."""

__version__ = "0.1.0"
