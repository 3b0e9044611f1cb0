"""app.stream.tuning: Faust's public settings and the garbage collector's thresholds."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from app.settings import Settings
from app.stream.tuning import LeanMonitor, faust_settings, tune_gc


@pytest.fixture
def thresholds() -> Iterator[None]:
    """Put the interpreter's thresholds back after the test."""
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


@pytest.mark.usefixtures("thresholds")
def test_tune_gc_spaces_the_collections_out() -> None:
    """The young threshold comes from the settings; the older generations follow it."""
    assert tune_gc(Settings(gc_young_threshold=20_000)) == (20_000, 50, 1000)
    assert gc.get_threshold() == (20_000, 50, 1000)


@pytest.mark.usefixtures("thresholds")
def test_tune_gc_zero_keeps_pythons_thresholds() -> None:
    """0 leaves whatever thresholds are in force."""
    gc.set_threshold(700, 10, 10)
    assert tune_gc(Settings(gc_young_threshold=0)) == (700, 10, 10)


def test_faust_settings_carry_the_tuning() -> None:
    """The App's keyword arguments follow the settings; the lean Monitor only when asked."""
    tuned = faust_settings(Settings(producer_linger_ms=7, broker_commit_every=123))
    assert tuned["producer_linger_ms"] == 7
    assert tuned["broker_commit_every"] == 123
    assert tuned["Monitor"] is LeanMonitor
    assert "Monitor" not in faust_settings(Settings(faust_lean_monitor=False))
