"""What exists only to reproduce the paper: ``aae reproduce`` (one function per table), the
independent CNN that judges generated digits, and the run records the tables are gathered from.
The baselines the tables compare with (NN, NN+VAT, IMSAT) are the core's
:class:`~aae.model.autoencoder.Classifier` under the overrides :mod:`aae.paper.reproduce` names."""
