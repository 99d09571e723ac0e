"""The documentation points at files that exist: results move (a table's runs go to the
ablations when the recipe changes), and a README link left behind is easy to miss."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc):
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text())
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    missing = [link for link in local if not (doc.parent / link).exists()]
    assert not missing, f"{doc.relative_to(ROOT)} links to missing files: {missing}"


def test_design_layout_lists_every_module():
    text = (ROOT / "docs" / "design.md").read_text()
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    listed, folder = set(), ""
    for line in block.splitlines()[2:]:  # after "src/aae/"
        name = line.split()[0] if line.strip() else ""
        if not name:
            continue
        if line.startswith("  ") and not line.startswith("    "):
            folder = name if name.endswith("/") else ""
            if not folder:
                listed.add(name)
        elif name.endswith(".py"):
            listed.add(folder + name)
    package = ROOT / "src" / "aae"
    actual = {
        str(p.relative_to(package)) for p in package.rglob("*.py") if p.name != "__init__.py" or p.parent == package
    }
    assert sorted(actual - listed) == [], "modules missing from design.md's layout"
    assert sorted(listed - actual) == [], "design.md lists modules that do not exist"


def test_readme_names_the_configs_that_ship_auto_precision():
    """The README's list of configs trained in bf16 where the hardware allows is read from the configs."""
    from aae.config.load import bundled_configs, load_config

    shipped = {name for name in bundled_configs() if load_config(name).train.precision == "auto"}
    text = (ROOT / "README.md").read_text()
    sentence = re.search(r"The configs that ship `auto`:\s+(.*?);", text, re.S).group(1)
    assert set(re.findall(r"`(\w+)`", sentence)) == shipped


def _results_rows():
    block = (ROOT / "README.md").read_text().split("## Results", 1)[1].split("\n## ", 1)[0]
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        link = re.search(r"\]\(([^)]+)\)", cells[-1]) if len(cells) >= 4 else None
        if line.startswith("| ") and link:
            yield cells[0], cells[2], ROOT / link.group(1)


def test_readme_results_are_the_records_figures():
    """Every figure in the README's results table, and every '1 seed' it claims, stands in the page
    it links, that page's tables, or the summary `aae reproduce all` wrote from the records."""
    summary = (ROOT / "docs" / "results" / "README.md").read_text()
    rows = list(_results_rows())
    assert len(rows) >= 10
    for what, ours, page in rows:
        corpus = summary + page.read_text()
        if page.with_suffix("").is_dir():
            corpus += "".join(f.read_text() for f in page.with_suffix("").rglob("*.md"))
        missing = [n for n in re.findall(r"\d+\.\d+", ours) if n not in corpus]
        assert not missing, f"README's row {what!r} has figures its page does not: {missing}"
        if "1 seed" in ours:
            assert "1 seed" in corpus, f"README's row {what!r} claims one seed; its page does not"


def test_design_says_why_each_config_key_is_kept():
    from aae.config.docs import keys

    section = (ROOT / "docs" / "design.md").read_text().split("## Config keys kept", 1)[1]
    named = set(re.findall(r"`(?:\w+\.)?(\w+)`", section))
    missing = sorted({name.split(".")[-1] for name, *_ in keys()} - named - {"name"})
    assert not missing, f"design.md's 'Config keys kept' does not name {missing}"


def test_readme_stays_a_guide():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300
