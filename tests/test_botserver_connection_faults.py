"""botserver's PostgreSQL misbehaving for real: sessions terminated with
pg_terminate_backend between and during queries, a table locked by another
session, a server that refuses connections. A report keeps its attempts, waits
no longer than its timeout, and says what happened in one clean line."""
import threading
import time

import pytest

from botreports import Principal, Reports
from botreports.core.errors import ReportFailed
from botreports.plugins.sources.botserver_pg import BotserverAnalytics, BotserverUnavailable, lost_reason
from botserver_support import botserver_db, connect, with_options  # noqa: F401 (fixture)

DAYS = {"start_date": "2025-03-10", "end_date": "2025-03-20"}


def terminate(db, pid=None):
    """``pg_terminate_backend`` on one session, or on every session of botreports' source."""
    admin = db.connect()
    admin.autocommit = True
    try:
        where = "pid = %s" if pid is not None else "application_name = 'botreports' AND pid <> pg_backend_pid()"
        return admin.execute(f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE {where}",
                             [pid] if pid is not None else []).fetchone()[0]
    finally:
        admin.close()


def test_a_terminated_pooled_connection_is_replaced_not_lent(botserver_db):
    pg = BotserverAnalytics(botserver_db.url, pool_min=1, pool_max=1)
    try:
        (first,), = pg.query("SELECT pg_backend_pid()")
        assert terminate(botserver_db, first) == 1
        time.sleep(0.2)
        (second,), = pg.query("SELECT pg_backend_pid()")  # no error: the dead one was checked and dropped
        assert second != first
    finally:
        pg.close()


def test_a_query_whose_connection_is_terminated_before_any_row_runs_again_once(botserver_db):
    pg = BotserverAnalytics(botserver_db.url, pool_min=1, pool_max=1)
    try:
        (victim,), = pg.query("SELECT pg_backend_pid()")
        killer = threading.Timer(0.5, terminate, args=(botserver_db, victim))
        killer.start()
        started = time.monotonic()
        rows = pg.query("SELECT pg_sleep(1.5), pg_backend_pid()")  # killed at 0.5 s, run again
        killer.join()
        assert rows[0][1] != victim and time.monotonic() - started < 5
    finally:
        pg.close()


def test_one_terminate_costs_a_report_no_attempt(botserver_db, tmp_path):
    # The fault: after pg_terminate_backend the pool lent the dead connections again, and one
    # terminate used up two of a report's three attempts.
    rk = Reports(data_dir=tmp_path / "data", data_source=botserver_db.url, load_entrypoints=False,
                 retry_backoff=0.01)
    principal = Principal(id="ana", org_id=botserver_db.org("org-acme"), roles={"report_creator"}, via="test")
    body = {"type": "usage", "format": "json", "timezone": "UTC", **DAYS}
    try:
        assert rk.generate(principal, body).state == "completed"  # the pool now holds connections
        assert terminate(botserver_db) >= 1
        again = rk.generate(principal, body)
        assert (again.state, again.attempts, again.error) == ("completed", 1, None)
    finally:
        rk.close()


def test_a_locked_table_holds_a_report_no_longer_than_its_timeout(botserver_db, tmp_path):
    rk = Reports(data_dir=tmp_path / "data", data_source=with_options(botserver_db.url, statement_timeout="1s"),
                 load_entrypoints=False)
    locker = botserver_db.connect()
    try:
        assert "lock_timeout=1000" in rk.source._connect_options()
        locker.execute("LOCK TABLE message_history IN ACCESS EXCLUSIVE MODE")  # held until rollback
        principal = Principal(id="ana", org_id=botserver_db.org("org-acme"), roles={"report_creator"}, via="test")
        for kind in ("usage", "performance"):
            started = time.monotonic()
            report = rk.generate(principal, {"type": kind, "format": "json", "timezone": "UTC", **DAYS})
            assert time.monotonic() - started < 1 + 2, kind
            assert report.state == "failed" and report.attempts == 1 and "1 s" in report.error
    finally:
        locker.rollback()
        locker.close()
        rk.close()


def test_unreachable_database_fails_the_report_with_one_clean_line(tmp_path):
    # The fault: errors carried libpq's raw text, newlines, tabs and the server's address included.
    rk = Reports(data_dir=tmp_path / "data", data_source="postgresql://postgres@127.0.0.1:1/test?connect_timeout=2",
                 load_entrypoints=False, retry_backoff=0.01)
    rk.source._pool = None
    import botreports.plugins.sources.botserver_pg as module
    original = module.POOL_WAIT_S
    module.POOL_WAIT_S = 1.0
    try:
        report = rk.generate(Principal(id="ana", org_id="org-acme", roles={"admin"}, via="test"),
                             {"type": "usage", "format": "json", "timezone": "UTC", **DAYS})
    finally:
        module.POOL_WAIT_S = original
        rk.close()
    assert report.state == "failed" and report.attempts == 3  # transient: retried, then given up
    assert "\n" not in report.error and "\t" not in report.error and "127.0.0.1" not in report.error
    assert "botserver's database" in report.error and "gave up after 3 attempts" in report.error


def test_libpq_messages_are_cut_to_one_line_without_the_address():
    import psycopg

    closed = psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly\n\t"
                                      "This probably means the server terminated abnormally\n\t"
                                      "before or while processing the request.")
    assert lost_reason(closed) == "server closed the connection unexpectedly"
    refused = psycopg.OperationalError('connection to server at "10.0.0.5", port 5432 failed: Connection refused\n\t'
                                       "Is the server running on that host and accepting TCP/IP connections?")
    assert lost_reason(refused) == "Connection refused"
    assert issubclass(BotserverUnavailable, ReportFailed) and BotserverUnavailable.transient
