"""The metadata store under test, on SQLite and on PostgreSQL: ``store_location`` is parametrised
over both, and ``open_store`` opens (as many times as a test likes) the store at that location.

The PostgreSQL one is a database created for each test module on the server of ``BOTREPORTS_TEST_PG``,
emptied before each test and dropped afterwards; it skips when PostgreSQL cannot be reached, except
with ``CI=true``, where it fails.
"""
import secrets

import pytest

from botreports.core.stores import open_store as open_store_at
from botserver_support import PG_URL, connect


@pytest.fixture(scope="module")
def postgres_store_url():
    admin = connect()
    admin.autocommit = True
    name = "botreports_store_" + secrets.token_hex(4)
    admin.execute(f"CREATE DATABASE {name}")
    base, _, _ = PG_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def _empty(url):
    with connect(url) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'botreports_schema'")]
        if tables:
            conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_location(request, tmp_path):
    """Where this test's store lives: an SQLite file, or an emptied PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "botreports.db")
    url = request.getfixturevalue("postgres_store_url")
    _empty(url)
    return url


@pytest.fixture
def open_store(store_location, tmp_path):
    """``open_store()`` -> a new store instance at ``store_location`` (closed after the test)."""
    opened = []

    def make():
        store = open_store_at(store_location, tmp_path)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
