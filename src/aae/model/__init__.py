"""The paper's Figure 1: the networks, the priors, the autoencoder with its heads and
discriminators, the losses, and the phases that train it, one regime at a time."""

from .autoencoder import AdversarialAutoencoder, Classifier, build_model

__all__ = ["AdversarialAutoencoder", "Classifier", "build_model"]
