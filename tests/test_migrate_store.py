"""``botreports migrate-store``: a one-host installation (SQLite file, report files in the data dir)
moved to PostgreSQL and S3, read back through a service on the new stores."""
import hashlib
import shutil

import pytest

from botreports.adapters.cli import main
from botreports.core.security import hash_secret
from s3_support import s3_bucket, s3_server  # noqa: F401 (fixtures)
from store_support import postgres_store_url  # noqa: F401 (fixture)

USAGE = {"type": "usage", "start_date": "2025-01-20", "end_date": "2025-01-21"}


@pytest.mark.postgres
def test_an_installation_moves_to_postgresql_and_s3(tmp_path, botreports_demo_db, postgres_store_url, s3_bucket,
                                                    principal_factory, capsys):
    from botreports import Reports

    old_dir = tmp_path / "old"
    old_dir.mkdir()
    shutil.copy(botreports_demo_db, old_dir / "analytics.db")
    old = Reports(data_dir=old_dir, load_entrypoints=False, queue="immediate")
    plain, key = old.create_api_key("org-acme", "report_admin", "ops")
    creator = principal_factory("report_creator")
    made = [old.generate(creator, {**USAGE, "format": fmt}) for fmt in ("csv", "json", "xlsx")]
    old.revocations.revoke("jti", "token-1", reason="lost")
    before = {table: old.store.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
              for table in ("reports", "api_keys", "audit_log", "report_records", "token_revocations")}
    old.close()

    target = f"s3://{s3_bucket}/moved"
    assert main(["migrate-store", "--data-dir", str(old_dir), "--to-store", postgres_store_url,
                 "--to-artifacts", target]) == 0
    assert "report files: 3 copied" in capsys.readouterr().err

    new = Reports(data_dir=tmp_path / "new", load_entrypoints=False, queue="immediate", store_url=postgres_store_url,
                  artifacts_url=target, secret="a-secret-all-hosts-share-from-now-on")
    try:
        after = {table: new.store.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in before}
        assert after == before
        assert new.store.find_api_key(hash_secret(plain)).id == key.id
        assert new.token_revoked({"jti": "token-1"})
        viewer = principal_factory("report_viewer")
        for report in made:
            file = new.download(viewer, report.id)
            assert file.path is None  # served from the bucket
            with file.open() as stream:
                assert hashlib.sha256(stream.read()).hexdigest() == report.artifact_sha256
        listed, total = new.list(viewer)
        assert total == 3 and {r.id for r in listed} == {r.id for r in made}
        # the numbered tables go on after the copied rows
        fresh = new.generate(creator, {**USAGE, "format": "csv"})
        assert fresh.state == "completed"
        assert new.store.db.execute("SELECT count(*) FROM audit_log").fetchone()[0] > before["audit_log"]
    finally:
        new.close()
    # a second run finds the target in use and changes nothing
    assert main(["migrate-store", "--data-dir", str(old_dir), "--to-store", postgres_store_url]) == 1
    assert "already holds reports" in capsys.readouterr().err
