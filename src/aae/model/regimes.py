"""One named :class:`Regime` per setting of the paper: which heads, where the label goes,
which phases run. A regime is data; the trainer runs its phases and never asks its name.

| regime            | heads      | label goes to      | phases (objective aae)                                 |
|-------------------|------------|--------------------|--------------------------------------------------------|
| unsupervised      | z          | nowhere            | reconstruction, regularization                         |
| label_conditioned | z          | z's discriminator  | reconstruction, regularization (Sec. 2.3)              |
| supervised        | z          | decoder            | reconstruction, regularization (Sec. 4)                |
| semi_supervised   | y, z       | classifier         | reconstruction, regularization, classification (Sec. 5)|
| clustering        | y (m), z   | nowhere            | reconstruction, regularization (Sec. 6)                |
| dim_reduction     | y, z, W_C  | classifier, if any | reconstruction (+ head penalty), regularization,       |
|                   |            |                    | classification if labels (Sec. 7)                      |
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Regime:
    name: str
    categorical_head: bool = False
    label_to: str | None = None
    """None, "discriminator", "decoder" or "classifier" """
    cluster_heads: bool = False
    labels: str = "none"
    """how many training labels the regime needs: none, some (semi-supervised), optional, all"""

    def phases(self, objective: str, y_terms: bool = False) -> tuple[str, ...]:
        """The phases one minibatch runs, for an objective (aae, vae, ae or classifier); a classifier
        smooths q(y|x) on the unlabeled batch where its y head has terms (VAT, mutual information)."""
        main = {
            "aae": ("reconstruction", "regularization"),
            "vae": ("elbo",),
            "ae": ("reconstruction",),
            "classifier": ("smoothing",) if y_terms else (),
        }[objective]
        return main + (("classification",) if self.label_to == "classifier" else ())


REGIMES: dict[str, Regime] = {
    r.name: r
    for r in [
        Regime("unsupervised"),
        Regime("label_conditioned", label_to="discriminator", labels="optional"),
        Regime("supervised", label_to="decoder", labels="all"),
        Regime("semi_supervised", categorical_head=True, label_to="classifier", labels="some"),
        Regime("clustering", categorical_head=True),
        Regime("dim_reduction", categorical_head=True, label_to="classifier", cluster_heads=True, labels="optional"),
    ]
}
