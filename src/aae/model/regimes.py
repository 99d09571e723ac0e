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

from .phases import CLASSIFICATION, ELBO, RECONSTRUCTION, REGULARIZATION, SMOOTHING, Phase

OBJECTIVES: dict[str, tuple[Phase, ...]] = {
    "aae": (RECONSTRUCTION, REGULARIZATION),
    "vae": (ELBO,),
    "ae": (RECONSTRUCTION,),
    "classifier": (),
}
"""the phases of each objective (``model.objective``); the regime may add the classification phase"""


@dataclass(frozen=True)
class Regime:
    name: str
    categorical_head: bool = False
    label_to: str | None = None
    """None, "discriminator", "decoder" or "classifier" """
    cluster_heads: bool = False
    labels: str = "none"
    """how many training labels the regime needs: none, some (semi-supervised), optional, all"""
    adds: tuple[Phase, ...] = ()
    """the phases it runs after its objective's: the classification phase, where labels train q(y|x)"""

    def phases(self, objective: str, y_terms: bool = False) -> tuple[Phase, ...]:
        """The phases one minibatch runs, for an objective (aae, vae, ae or classifier); a classifier
        smooths q(y|x) on the unlabeled batch where its y head has terms (VAT, mutual information)."""
        main = (SMOOTHING,) if objective == "classifier" and y_terms else OBJECTIVES[objective]
        return main + self.adds


REGIMES: dict[str, Regime] = {
    r.name: r
    for r in [
        Regime("unsupervised"),
        Regime("label_conditioned", label_to="discriminator", labels="optional"),
        Regime("supervised", label_to="decoder", labels="all"),
        Regime("semi_supervised", categorical_head=True, label_to="classifier", labels="some", adds=(CLASSIFICATION,)),
        Regime("clustering", categorical_head=True),
        Regime(
            "dim_reduction",
            categorical_head=True,
            label_to="classifier",
            cluster_heads=True,
            labels="optional",
            adds=(CLASSIFICATION,),
        ),
    ]
}
