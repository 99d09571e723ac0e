"""The config's keys and their documentation: the list of every key (``aae train --help``) and
the markdown table of keys, defaults and meanings that ``make readme`` writes into the README.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .keys import shown
from .schema import SECTIONS, ExperimentConfig


def keys() -> list[tuple[str, Any, dataclasses.Field]]:
    """Every config key as (dotted name, default, field), in the order of the dataclasses."""
    out = [("name", ExperimentConfig.name, dataclasses.fields(ExperimentConfig)[0])]
    for section, cls in SECTIONS.items():
        default = cls()
        out += [(f"{section}.{f.name}", getattr(default, f.name), f) for f in dataclasses.fields(cls)]
    return out


def key_lines() -> str:
    """Every config key's name, grouped by table, one line a table (``aae train --help``)."""
    groups: dict[str, list[str]] = {}
    for name, _, _ in keys():
        section, _, short = name.rpartition(".")
        groups.setdefault(section or "top level", []).append(short)
    return "\n".join(f"{s}: {', '.join(names)}" for s, names in groups.items())


def key_table() -> str:
    """The markdown table of every key, its default and its documentation (README, ``aae train --help``)."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for name, default, f in keys():
        doc = f.metadata["doc"]
        if f.metadata.get("choices"):
            doc += " (" + " | ".join(repr(c) if c == "" else str(c) for c in f.metadata["choices"]) + ")"
        lines.append(f"| `{name}` | `{shown(default)}` | {doc.replace('|', chr(92) + '|')} |")
    return "\n".join(lines)


KEY_TABLE = re.compile(r"(<!-- config-keys:start -->\n).*?(<!-- config-keys:end -->)", re.DOTALL)
"""where the README's generated key table sits"""


def write_key_table(readme: str | Path) -> None:
    """Replace the table between the README's ``config-keys`` markers by :func:`key_table`."""
    path = Path(readme)
    text = path.read_text()
    if not KEY_TABLE.search(text):
        raise ConfigError(f"{path} has no <!-- config-keys:start --> ... <!-- config-keys:end --> markers")
    path.write_text(KEY_TABLE.sub(lambda m: m.group(1) + key_table() + "\n" + m.group(2), text))
