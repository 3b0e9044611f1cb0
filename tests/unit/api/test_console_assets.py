"""The console's templates and static files ship in the package (no build step)."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

import app
from app.api.console.views import STATIC_DIR

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = Path(app.__file__).parent


def test_package_data_covers_every_console_file() -> None:
    """Each template and asset matches a package-data pattern of pyproject.toml."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["app"]
    console = PACKAGE / "api" / "console"
    files = [p for p in console.rglob("*") if p.is_file() and p.suffix not in {".py", ".pyc"}]
    assert len(files) >= 20
    for path in files:
        relative = path.relative_to(PACKAGE).as_posix()
        assert any(fnmatch(relative, pattern) for pattern in patterns), relative


def test_the_pages_load_the_vendored_files_by_their_versioned_names() -> None:
    """base.html names the files VERSIONS.md records, and each is there with a licence."""
    base = (PACKAGE / "api" / "console" / "templates" / "base.html").read_text()
    versions = (STATIC_DIR / "vendor" / "VERSIONS.md").read_text()
    for name in ("htmx-2.0.11.min.js", "uPlot-1.6.32.iife.min.js", "uPlot-1.6.32.min.css"):
        assert f"/console/static/vendor/{name}" in base
        assert name in versions
        assert (STATIC_DIR / "vendor" / name).stat().st_size > 1000
    assert "Zero-Clause BSD" in (STATIC_DIR / "vendor" / "htmx-LICENSE").read_text()
    assert "MIT License" in (STATIC_DIR / "vendor" / "uPlot-LICENSE").read_text()
