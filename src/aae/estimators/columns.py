"""Columns that are not real numbers: binary, one-hot groups and integers, detected in a table or
declared with ``column_types``, each given its own decoder likelihood so that ``sample`` and
``inverse_transform`` return values the column can hold.

- **binary** (only 0 and 1): a Bernoulli likelihood; decoded as 0 or 1 (probability above 1/2).
- **one-hot** (a run of binary columns of which exactly one is 1 in every row): a categorical
  softmax over the run; decoded as one-hot rows (the most probable category).
- **integer** (whole numbers, more than two values): a Gaussian on the standardized column, as a
  real column; decoded rounded to the nearest integer within the range seen in ``fit``.
- **real**: everything else; a Gaussian on the standardized column (or, for data in [0, 1], the
  Bernoulli of ``output``).

``column_types="auto"`` detects them in a table (n, features); image arrays are pixels, never
detected. A dict declares them: ``{"binary": [0, 3], "integer": [5], "onehot": [[6, 7, 8]]}``
(column indices; a column not named is real). ``None`` reads every column as real.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from ..model.likelihood import ColumnLikelihood

KINDS = ("binary", "integer", "onehot")


def _onehot_end(x: np.ndarray, binary: np.ndarray, j: int) -> int | None:
    """Where a one-hot run starting at column ``j`` ends (one past its last column), or None."""
    total = np.zeros(len(x))
    for k in range(j, x.shape[1]):
        if not binary[k]:
            return None
        total += x[:, k]
        if np.any(total > 1):
            return None
        if k > j and np.all(total == 1):
            return k + 1
    return None


def detect(x: np.ndarray) -> dict[str, list]:
    """The non-real columns of ``x``: binary, integer and one-hot runs."""
    constant = np.ptp(x, axis=0) == 0
    integral = np.all(x == np.round(x), axis=0) & ~constant
    binary = integral & np.all((x == 0) | (x == 1), axis=0)
    groups, j = [], 0
    while j < x.shape[1]:
        end = _onehot_end(x, binary, j) if binary[j] else None
        if end is not None:
            groups.append(list(range(j, end)))
        j = end or j + 1
    in_groups = {c for g in groups for c in g}
    return {
        "binary": [int(c) for c in np.flatnonzero(binary) if c not in in_groups],
        "integer": [int(c) for c in np.flatnonzero(integral & ~binary)],
        "onehot": groups,
    }


def declared(column_types: dict, d: int) -> dict[str, list]:
    """A ``column_types`` dict checked: known kinds, column indices in range, each column once."""
    unknown = sorted(set(column_types) - set(KINDS), key=str)
    if unknown:
        raise ValueError(f"column_types has unknown kind {unknown[0]!r}; allowed: {', '.join(KINDS)}")
    out = {"binary": [], "integer": [], "onehot": []}
    seen: set[int] = set()
    for kind, cols in column_types.items():
        items = [list(g) for g in cols] if kind == "onehot" else [[c] for c in cols]
        for group in items:
            if kind == "onehot" and len(group) < 2:
                raise ValueError(f"column_types['onehot'] group {group} needs at least two columns")
            for c in group:
                if not isinstance(c, (int, np.integer)) or isinstance(c, bool) or not 0 <= c < d:
                    raise ValueError(f"column_types[{kind!r}] names column {c!r}; give indices in 0..{d - 1}")
                if c in seen:
                    raise ValueError(f"column_types names column {c} twice")
                seen.add(int(c))
            out[kind].append([int(c) for c in group]) if kind == "onehot" else out[kind].append(int(group[0]))
    return out


def check_values(x, types: dict[str, list]) -> None:
    """Declared binary and one-hot columns must hold 0 and 1 (one 1 a row in a group)."""
    for c in types["binary"] + [c for g in types["onehot"] for c in g]:
        if not np.all((x[:, c] == 0) | (x[:, c] == 1)):
            raise DataError(f"column {c} is declared binary or one-hot but holds values other than 0 and 1")
    for g in types["onehot"]:
        rows = x[:, g].sum(1)
        if not np.all(rows == 1):
            raise DataError(f"one-hot columns {g}: row {int(np.flatnonzero(rows != 1)[0])} does not hold exactly one 1")


def valid_values(out: np.ndarray, types: dict[str, list], low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Decoded rows (in the data's units) made values their columns can hold."""
    if types["binary"]:
        out[:, types["binary"]] = out[:, types["binary"]] > 0.5
    for g in types["onehot"]:
        block = np.zeros((len(out), len(g)), out.dtype)
        block[np.arange(len(out)), out[:, g].argmax(1)] = 1
        out[:, g] = block
    if types["integer"]:
        c = types["integer"]
        out[:, c] = np.clip(np.round(out[:, c]), low[c], high[c])
    return out


def resolve(column_types, x: np.ndarray, images: bool) -> dict[str, list]:
    """The kinds of ``x``'s columns under the ``column_types`` parameter (image pixels are all real)."""
    none = {"binary": [], "integer": [], "onehot": []}
    if column_types is None:
        return none
    if images:
        if column_types == "auto":
            return none
        raise ValueError("column_types is for tables; X is an image array, whose pixels are all real")
    if column_types == "auto":
        return detect(x)
    types = declared(column_types, x.shape[1])
    check_values(x, types)
    return types


def likelihood(types: dict[str, list], output: str, d: int) -> ColumnLikelihood | None:
    """The decoder's per-column likelihood, or None where ``output``'s serves every column."""
    if not types["onehot"] and (output == "bernoulli" or not types["binary"]):
        return None
    return ColumnLikelihood(d, output, bernoulli=types["binary"], groups=types["onehot"])
