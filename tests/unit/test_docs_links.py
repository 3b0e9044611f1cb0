"""The README and docs link only to files inside the repository, and those files exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
ANCHOR = re.compile(r"^#+ (.+)$", re.MULTILINE)


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    found = set()
    for heading in ANCHOR.findall(path.read_text(encoding="utf-8")):
        text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
        found.add(text.replace(" ", "-"))
    return found


def test_every_link_stays_in_the_repository_and_resolves() -> None:
    """Relative links name existing files (and headings); none leaves the repository."""
    problems = []
    for doc in DOCS:
        for target in LINK.findall(doc.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            file_part, _, anchor = target.partition("#")
            path = (doc.parent / file_part).resolve() if file_part else doc
            if not path.is_relative_to(ROOT):
                problems.append(f"{doc.name}: {target} points outside the repository")
            elif not path.exists():
                problems.append(f"{doc.name}: {target} does not exist")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                problems.append(f"{doc.name}: {target}: no heading #{anchor}")
    assert problems == []


def test_the_contract_is_versioned_with_a_changelog() -> None:
    """docs/contract.md names its version, has a changelog, and cites nothing outside."""
    text = (ROOT / "docs" / "contract.md").read_text(encoding="utf-8")
    version = re.search(r"\*\*Version (1\.\d+)\.\*\*", text)
    assert version is not None
    assert "## Changelog" in text
    assert f"- **{version.group(1)}**:" in text.split("## Changelog", 1)[1]
    assert "shared/" not in text
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "](docs/contract.md)" in readme
