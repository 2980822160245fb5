"""A botserver database for the tests: botserver's real migrations applied to a
database of its own, its tables filled the way botserver writes them from
synthetic data, the canonical file the source must present beside it, and the
database dropped afterwards.

Tests that need PostgreSQL skip when it cannot be reached or botserver's
migrations are absent, except with ``CI=true``, where they fail instead.
"""
import datetime as dt
import math
import os

import pytest

from botreports.plugins.sources.botserver_fixture import (
    MIGRATIONS_ENV, create_botserver_database, drop_botserver_database, expected_canonical, load_botserver,
    migrations_dir, uuid_for)
from botreports.plugins.sources.synthetic import generate

PG_URL = os.environ.get("BOTREPORTS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
#: 8 March to 2 April 2025: spans the DST changes of New York (9 March) and Berlin (30 March).
DEMO = {"days": 26, "bots": 6, "messages": 6000, "seed": 21, "end_date": dt.date(2025, 4, 2), "orgs": 3}


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def connect(url=PG_URL):
    """A psycopg connection, or a skip (a failure under CI) when PostgreSQL is unreachable."""
    try:
        import psycopg
    except ImportError:
        if in_ci():
            raise
        pytest.skip("psycopg is not installed (pip install botreports[postgres])")
    try:
        return psycopg.connect(url, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if in_ci():
            pytest.fail(f"PostgreSQL at {url} is required in CI: {exc}")
        pytest.skip(f"PostgreSQL is not reachable at {url}: {exc}")


def with_options(url, **options):
    """``url`` with botreports' URL options (statement_timeout, automation, ...) added."""
    query = "&".join(f"{k}={v}" for k, v in options.items())
    return f"{url}{'&' if '?' in url else '?'}{query}"


class BotserverDatabase:
    """botserver's schema from its migrations, loaded from synthetic data, and the expected canonical file.

    ``url`` is the database (a source URL), ``admin_url`` the server's, ``canonical_file`` the
    synthetic input, ``sqlite_file`` what the source must present (automation sessions included).
    """

    def __init__(self, tmp_path_factory, **demo):
        connect().close()
        if migrations_dir() is None:
            reason = (f"botserver's migrations are not found (../shared/botserver beside the checkout,"
                      f" or ${MIGRATIONS_ENV})")
            if in_ci():
                pytest.fail(reason)
            pytest.skip(reason)
        self.admin_url = PG_URL
        self.folder = tmp_path_factory.mktemp("botserver")
        self.canonical_file = self.folder / "canonical.db"
        generate(self.canonical_file, **{**DEMO, **demo})
        self.url = create_botserver_database(PG_URL)
        try:
            self.counts = load_botserver(self.url, self.canonical_file)
            self.sqlite_file = expected_canonical(self.canonical_file, self.folder / "analytics.db")
        except BaseException:
            self.drop()
            raise
        self._without_automation = None

    def org(self, canonical_org):
        """The UUID (text) botserver's tables give organisation ``canonical_org`` (e.g. org-acme)."""
        return uuid_for("org", canonical_org)

    def bot(self, canonical_bot):
        return uuid_for("bot", canonical_bot)

    def sqlite_without_automation(self):
        """The canonical file the source must present with ``automation=exclude``."""
        if self._without_automation is None:
            self._without_automation = expected_canonical(
                self.canonical_file, self.folder / "analytics-no-automation.db", automation=False)
        return self._without_automation

    def connect(self):
        """A psycopg connection to botserver's database (to read its raw tables)."""
        return connect(self.url)

    def drop(self):
        drop_botserver_database(self.admin_url, self.url)


def fresh_botserver_database(tmp_path_factory):
    """A BotserverDatabase for the fixture that yields this, dropped afterwards (for tests that change it)."""
    database = BotserverDatabase(tmp_path_factory)
    try:
        yield database
    finally:
        database.drop()


@pytest.fixture(scope="session")
def botserver_db(tmp_path_factory):
    yield from fresh_botserver_database(tmp_path_factory)


def empty(value):
    """Nothing in it: what the SQLite source answers where botserver has no column."""
    if isinstance(value, dict):
        return all(empty(v) for v in value.values())
    if isinstance(value, list):
        return all(empty(v) for v in value)
    return value in (None, 0, 0.0)


def differences(pg, lite, where="", found=None, *, rel_tol=1e-9, none_for_empty=False):
    """Where ``pg`` (from PostgreSQL) is not ``lite`` (from SQLite): numbers exactly, floats to
    ``rel_tol``. With ``none_for_empty`` a None from PostgreSQL matches an empty SQLite answer
    (where botserver has no column the source answers None, the SQLite file holds nothing)."""
    found = [] if found is None else found
    if none_for_empty and pg is None and lite is not None:
        if not empty(lite):
            found.append((where, pg, lite))
    elif (isinstance(pg, float) or isinstance(lite, float)) and not isinstance(pg, bool) \
            and not isinstance(lite, bool):
        if lite is None or pg is None or not math.isclose(pg, lite, rel_tol=rel_tol, abs_tol=1e-9):
            found.append((where, pg, lite))
    elif isinstance(pg, dict) and isinstance(lite, dict):
        if pg.keys() != lite.keys():
            found.append((where, sorted(pg.keys() ^ lite.keys())))
        for key in sorted(pg.keys() & lite.keys(), key=str):
            differences(pg[key], lite[key], f"{where}.{key}", found, rel_tol=rel_tol, none_for_empty=none_for_empty)
    elif isinstance(pg, list) and isinstance(lite, list):
        if len(pg) != len(lite):
            found.append((where, f"{len(pg)} items, not {len(lite)}"))
        for index, (x, y) in enumerate(zip(pg, lite)):
            differences(x, y, f"{where}[{index}]", found, rel_tol=rel_tol, none_for_empty=none_for_empty)
    elif pg != lite:
        found.append((where, pg, lite))
    return found
