"""pytest plugin for plugin authors (entry point ``pytest11``).

Fixtures:

- ``reports``: a ``Reports`` over a temporary data dir with a small synthetic
  dataset, the immediate queue and no entry points.
- ``system_principal`` and ``principal_factory(role, org)`` for calling the facade.

And ``registered(reports, plugin)``, a context manager that registers a plugin
for the duration of a ``with`` block and unregisters it afterwards.
"""
from __future__ import annotations

import datetime as dt
import shutil
from contextlib import contextmanager

import pytest

#: The small dataset every ``reports`` fixture starts from (fast to build, still realistic).
DEMO = {"days": 14, "bots": 6, "messages": 6000, "seed": 7, "end_date": dt.date(2025, 1, 31)}


@contextmanager
def registered(reports, plugin, name=None):
    """Register ``plugin`` on ``reports`` inside the block only."""
    reports.add_plugin(plugin, name)
    try:
        yield plugin
    finally:
        reports.remove_plugin(plugin)


@pytest.fixture(scope="session")
def botreports_demo_db(tmp_path_factory):
    """A small synthetic analytics file, built once per test session (do not modify it)."""
    from botreports.plugins.sources.synthetic import generate

    path = tmp_path_factory.mktemp("botreports-demo") / "analytics.db"
    generate(path, **DEMO)
    return path


@pytest.fixture
def reports(tmp_path, botreports_demo_db):
    """A ``Reports`` with its own data dir holding a copy of the small demo dataset."""
    from botreports import Reports

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(botreports_demo_db, data_dir / "analytics.db")
    instance = Reports(data_dir=data_dir, load_entrypoints=False, queue="immediate")
    yield instance
    instance.close()


@pytest.fixture
def system_principal():
    from botreports.core.service import SYSTEM
    return SYSTEM


@pytest.fixture
def principal_factory():
    """``principal_factory("report_creator", "org-acme")`` -> a Principal."""
    from botreports import Principal

    def make(role, org="org-acme", id=None):
        return Principal(id=id or f"{role}@{org}", org_id=org, roles={role} if role else set(), via="test")

    return make
