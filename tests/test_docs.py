"""README.md, CONTRIBUTING.md and docs/: every relative link and every repository path they name exists,
and README stays a user's page."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# a backticked path inside the repository: starts with one of its top-level folders, no placeholders
PATH = re.compile(r"`((?:vocalsep|recipes|data|tests|bench|docs)/[A-Za-z0-9_.\-/]+)`")


def _names(page: Path):
    text = page.read_text()
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # web addresses and anchors
        yield "link", target.split("#", 1)[0], (page.parent / target.split("#", 1)[0])
    for path in PATH.findall(text):
        yield "path", path, ROOT / path.rstrip(".")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_and_named_path_exists(page):
    missing = [f"{kind} {name}" for kind, name, target in _names(page) if not target.exists()]
    assert not missing, f"{page.relative_to(ROOT)} names what does not exist: {missing}"


def test_the_checker_finds_a_broken_link(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("see [this](nowhere.md), `vocalsep/nope.py` and [ok](p.md), [web](https://x.org)\n")
    found = {(kind, name) for kind, name, target in _names(page) if not target.exists()}
    assert found == {("link", "nowhere.md"), ("path", "vocalsep/nope.py")}


def test_readme_is_short_and_links_every_doc():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    linked = {(ROOT / t).resolve() for t in LINK.findall(readme) if not re.match(r"^[a-z]+:", t)}
    docs = {p.resolve() for p in (ROOT / "docs").glob("*.md")}
    assert docs <= linked, f"README does not link {sorted(p.name for p in docs - linked)}"
    cards = {p.resolve() for p in (ROOT / "docs" / "models").glob("*.md")}
    assert cards <= linked


def test_every_bundled_model_has_a_card_and_a_row():
    import json

    registry = json.loads((ROOT / "vocalsep" / "pretrained" / "registry.json").read_text())
    names = registry["models"] if "models" in registry else registry
    readme = (ROOT / "README.md").read_text()
    for name in names:
        if name == "default":
            continue
        assert (ROOT / "docs" / "models" / f"{name}.md").is_file(), name
        assert f"| `{name}`" in readme, name
