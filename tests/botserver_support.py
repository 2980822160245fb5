"""A botserver database for the tests: its schema in a PostgreSQL schema of its
own, filled from the same synthetic data as an SQLite file, dropped afterwards.

Tests that need PostgreSQL skip when it cannot be reached, except with
``CI=true``, where they fail instead.
"""
import datetime as dt
import os
import secrets

import pytest

from botreports.plugins.sources.botserver_fixture import install_schema, load_botserver, uuid_for, uuid_keyed_copy
from botreports.plugins.sources.synthetic import generate

PG_URL = os.environ.get("BOTREPORTS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
#: Spans a DST change in New York and in Berlin (March 2025).
DEMO = {"days": 21, "bots": 6, "messages": 6000, "seed": 21, "end_date": dt.date(2025, 4, 4), "orgs": 3}


def connect(url=PG_URL):
    """A psycopg connection, or a skip (a failure under CI) when PostgreSQL is unreachable."""
    try:
        import psycopg
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("psycopg is not installed (pip install botreports[postgres])")
    try:
        return psycopg.connect(url, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {url} is required in CI: {exc}")
        pytest.skip(f"PostgreSQL is not reachable at {url}: {exc}")


def with_options(url, **options):
    """``url`` with botreports' URL options (schema, statement_timeout, ...) added."""
    query = "&".join(f"{k}={v}" for k, v in options.items())
    return f"{url}{'&' if '?' in url else '?'}{query}"


class BotserverDatabase:
    """A schema of botserver tables loaded from a uuid-keyed canonical file."""

    def __init__(self, tmp_path_factory):
        self.admin = connect()
        self.schema = f"botserver_test_{secrets.token_hex(4)}"
        folder = tmp_path_factory.mktemp("botserver")
        canonical = folder / "canonical.db"
        generate(canonical, **DEMO)
        self.sqlite_file = uuid_keyed_copy(canonical, folder / "analytics.db")
        install_schema(self.admin, self.schema)
        self.counts = load_botserver(self.admin, self.schema, self.sqlite_file)
        self.url = with_options(PG_URL, schema=self.schema)

    def org(self, canonical_org):
        return uuid_for("org", canonical_org)

    def drop(self):
        from psycopg import sql
        self.admin.rollback()
        with self.admin.cursor() as cur:
            cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema)))
        self.admin.commit()
        self.admin.close()


@pytest.fixture(scope="session")
def botserver_db(tmp_path_factory):
    database = BotserverDatabase(tmp_path_factory)
    try:
        yield database
    finally:
        database.drop()
