"""Measuring a trained model: metrics, the paper's protocols, and the figures."""
