"""Moving a one-host installation to shared engines: every metadata row copied from one store to
another (the SQLite file to PostgreSQL) and every report file from one artifact store to another
(the data dir to S3). Both stores encode values alike, so rows are copied as they are."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Dict

#: Every table of the store, parents first.
TABLES = ("api_keys", "templates", "schedules", "reports", "schedule_runs", "deliveries", "audit_log",
          "report_records", "token_revocations")
#: Tables whose ``id`` the database numbers (their counters must follow the copied rows).
NUMBERED = ("schedule_runs", "deliveries", "audit_log", "token_revocations")
BATCH = 500


def copy_store(source, target) -> Dict[str, int]:
    """Copy every row of ``source`` into ``target`` (which must hold no reports, keys or
    schedules yet) in one transaction of the target; returns the rows copied per table."""
    for table in ("reports", "api_keys", "schedules"):
        if target.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]:
            raise ValueError(f"the target store already holds {table}; copy into an empty store")
    copied = {}
    with target.transaction() as db:
        for table in TABLES:
            columns = [column for column in _columns(source, table) if column in set(_columns(target, table))]
            names, marks = ", ".join(columns), ", ".join("?" for _ in columns)
            offset, count = 0, 0
            while True:
                rows = source.db.execute(f"SELECT {names} FROM {table} ORDER BY 1 LIMIT ? OFFSET ?",
                                         [BATCH, offset]).fetchall()
                for row in rows:
                    db.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(row))
                count += len(rows)
                offset += BATCH
                if len(rows) < BATCH:
                    break
            copied[table] = count
        if not target.is_local:
            for table in NUMBERED:
                db.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                           f" coalesce((SELECT max(id) FROM {table}), 0) + 1, false)")
    return copied


def _columns(store, table):
    cursor = store.db.execute(f"SELECT * FROM {table} LIMIT 0")
    return [column[0] for column in cursor.description]


def copy_artifacts(store, source, target) -> int:
    """Copy the file of every report ``store`` names from ``source`` to ``target`` (through a
    temporary file, the source left as it is); returns how many were copied."""
    copied = 0
    keys = [row["artifact_path"] for row in store.rows(
        "SELECT artifact_path FROM reports WHERE artifact_path IS NOT NULL ORDER BY id")]
    with tempfile.TemporaryDirectory(prefix="botreports-migrate-") as folder:
        for key in keys:
            if not source.exists(key):
                continue  # expired or removed by hand: its report answers 409 on either side
            local = Path(folder) / Path(key).name
            with source.open(key) as stream, open(local, "wb") as out:
                shutil.copyfileobj(stream, out, 1024 * 1024)
            target.save(key, local)
            local.unlink(missing_ok=True)
            copied += 1
    return copied
