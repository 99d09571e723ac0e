"""scikit-learn estimators over the same model and trainer the command line uses.

Each class is one regime of the paper. Constructors only store their arguments (so ``clone``,
``get_params``, grid searches and pipelines work); ``fit`` checks them (scikit-learn's parameter
validation, one line naming the parameter and what it allows; the config's own checks for the
values it holds) and returns the estimator. What it learned ends in ``_``: ``model_`` (the
:class:`~aae.model.autoencoder.AdversarialAutoencoder`), ``history_`` (one dict per epoch),
``n_iter_`` (epochs trained), ``loss_curve_`` (per epoch, the mean reconstruction loss -log p(x|r),
plus the KL term for the VAE), ``config_``, ``embedding_`` (the transform of the training data),
``output_``, ``column_types_``, ``image_shape_``, ``n_features_in_`` (and ``feature_names_in_``
for a DataFrame), ``classes_`` where labels were seen.

>>> from sklearn.datasets import load_wine
>>> X, y = load_wine(return_X_y=True)                       # raw features: standardized inside
>>> y_some = y.copy(); y_some[::3] = -1                      # -1 marks an unlabeled point
>>> clf = SemiSupervisedAAE(random_state=0).fit(X, y_some)   # doctest: +SKIP
>>> clf.predict(X[:5]), clf.transform(X[:5]).shape           # doctest: +SKIP
>>> X_new, y_new = clf.sample(16)                            # doctest: +SKIP

**Data.** A real-valued table (n, features), dense or sparse (densified for training, in blocks of
rows elsewhere), or an image array (n, h, w) or (n, h, w, c): images are flattened inside, their
shape kept in ``image_shape_``, and ``inverse_transform`` and ``sample`` give images back;
``transform`` and ``predict`` take either the images or their flattened rows. ``output="auto"``
keeps the Bernoulli decoder of the paper for data in [0, 1] (within 1e-6; values are clipped into
[0, 1], in ``fit`` and later) and otherwise standardizes each feature with the mean and standard
deviation learned in ``fit`` and uses a Gaussian decoder; ``inverse_transform`` and ``sample``
undo the standardization. ``column_types`` (``"auto"``: detected in a table) gives binary, one-hot
and integer columns their own likelihoods, so that decoded rows hold 0/1, one-hot and whole values
(:mod:`aae.estimators.columns`). At transform time data outside the training range is fine.
float32 and float64 inputs come back in the same dtype (other dtypes as float64); with
``set_output(transform="pandas")`` every method giving features (``transform``,
``inverse_transform``, ``sample``) gives a DataFrame.

**Labels** may be any integers or strings; as in :mod:`sklearn.semi_supervised`, -1 marks an
unlabeled point, and so does the string ``'-1'`` (so -1 can never be a class: recode such labels).

**Parameters** shared by all six: ``n_components`` (the size of the code ``transform`` gives: z,
or W_C y + z; more than the features of X is warned about), ``net`` (``"auto"``: convolutional
networks for image arrays, MLPs for tables; or ``"mlp"``, ``"conv"``), ``hidden`` and
``disc_hidden`` (widths of the encoder/decoder and discriminator layers: a sequence, or an int for
one layer), ``prior`` (a name, a table, a ``Prior`` or a function n -> samples), ``encoder`` (not
the VAE's, always Gaussian), ``output``, ``column_types``, ``epochs``, ``batch_size``, ``lr`` (one
float for every optimizer, or a dict by parameter group as ``train.lr``), ``config``, ``overrides``,
``checkpoint_dir``, ``log_dir``, ``device``, ``random_state`` (an int is the run's torch seed, the
``train.seed`` of ``aae train``; None or a ``RandomState`` draws one, None from numpy's global
state) and ``verbose`` (a progress bar).

**Sizes.** With ``config`` None, what is left at None is derived from the data (n rows, d features):
``hidden`` two layers of ``clip(2 d, 64, 512)`` rounded to a power of two (digits: 128-128, wine
and iris: 64-64, MNIST: 512-512), ``disc_hidden`` the same; ``batch_size`` ``clip(n // 10, 16,
100)`` (ClusteringAAE: at least 8 points per cluster); ``epochs`` enough for a budget of ``clip(n,
600, 3000)`` optimizer steps (digits: 106 epochs of 17 batches). ``n_components`` is 2 (ClusteringAAE:
``min(5, n_features)``). With ``config`` (a bundled config's name such as ``"mnist_semi_100"``,
or a TOML file) what is None takes that config's values (the library's defaults, the paper's MNIST
networks, for what the file does not set); ``overrides`` are dotted ``key=value`` strings as ``aae
train --set`` takes them, below the parameters and above the config. A batch larger than the data
is clamped to it, as ``MLPClassifier`` does. CPU times of default fits are in
docs/results/estimators.md.

**Runs.** With ``checkpoint_dir`` the run is checkpointed there, with a fingerprint of the fit: the
training data (shape, dtype, a SHA-256 of X's bytes, and the labels) and every parameter but
``epochs``. A later ``fit`` with the same fingerprint continues it (more epochs train on from
where it stopped, as ``aae train --resume`` does); a fit of anything else (other data, as in each
fold of a cross-validation, other parameters, or fewer epochs than it holds) trains afresh and
replaces it, so a checkpoint_dir holds one fit, the last, and never serves a model of other data
(with ``random_state=None`` every fit draws a new seed, so every fit is a new one). Folds fitted
in parallel (``n_jobs``) need a checkpoint_dir each: a second fit on a folder in use is refused.
A folder holding other files, or an ``aae train`` run, is refused. ``log_dir`` writes
TensorBoard event files (needs ``pip install tensorboard``).

**Saving.** ``est.save(folder)`` writes the fitted estimator as a run is written (the model as
safetensors, its parameters, scaling, column kinds, image shape and classes as JSON) and
``aae.load_estimator(folder)`` reads it back, giving the same outputs; loading runs no code from the
files, and ``aae sample --run folder`` decodes prior samples in the units of fit's X (so does it on
a checkpoint_dir). ``pickle`` works too, as for any scikit-learn estimator, but unpickling runs
whatever code the file names: unpickle only files you trust, and prefer ``save`` for anything you
share.
``train.select_by`` (early stopping on a validation split) is for ``aae train``: an estimator trains
its epochs and keeps the last (or, with ``train.ema``, the averaged) weights.
"""

from .autoencoders import AAE, VAE, SupervisedAAE
from .categorical import ClusteringAAE, DimReductionAAE, SemiSupervisedAAE

__all__ = ["AAE", "VAE", "SupervisedAAE", "SemiSupervisedAAE", "ClusteringAAE", "DimReductionAAE"]
