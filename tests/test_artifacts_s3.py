"""Report files on S3-compatible storage, against a real S3 API (moto's server on 127.0.0.1): large
files go up in parts without being held in memory, a report is completed only once its object is
stored, downloads stream it from either store, links work without credentials, deletes and
retention remove the objects."""
import csv
import datetime as dt
import hashlib
import io
import os
import shutil
import tracemalloc

import pytest
import requests

from botreports.core.artifact_stores import LocalArtifacts, open_artifacts
from botreports.core.artifact_stores.s3 import PART_BYTES, S3Artifacts
from http_support import BASE, LiveServer
from s3_support import s3_bucket, s3_server  # noqa: F401 (fixtures)

USAGE = {"type": "usage", "format": "csv", "start_date": "2025-01-20", "end_date": "2025-01-21"}


def objects_in(bucket):
    import boto3

    listed = boto3.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: item for item in listed}


def test_a_large_file_goes_up_in_parts_without_being_held_in_memory(s3_bucket, tmp_path):
    store = open_artifacts(f"s3://{s3_bucket}/tenant-a", tmp_path)
    assert isinstance(store, S3Artifacts)
    size = 5 * PART_BYTES + 12345
    path = tmp_path / "big.csv"
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        for i in range(size // (1 << 20) + 1):
            block = os.urandom(min(1 << 20, size - i * (1 << 20)))
            out.write(block)
            digest.update(block)
    tracemalloc.start()
    try:
        store.save("reports/rpt-big.csv", path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not path.exists()  # the local copy is gone once the object is stored
    assert peak < size / 2, f"{peak} bytes held for a {size} byte file"
    stored = objects_in(s3_bucket)["tenant-a/reports/rpt-big.csv"]
    assert stored["Size"] == size
    assert stored["ETag"].strip('"').endswith("-6")  # six parts: a multipart upload
    read = hashlib.sha256()
    with store.open("reports/rpt-big.csv") as stream:
        for block in stream:
            read.update(block)
    assert read.hexdigest() == digest.hexdigest()
    store.delete("reports/rpt-big.csv")
    assert not store.exists("reports/rpt-big.csv") and objects_in(s3_bucket) == {}
    with pytest.raises(FileNotFoundError):
        store.open("reports/rpt-big.csv")


def test_the_default_is_the_data_dir(tmp_path):
    store = open_artifacts(None, tmp_path)
    assert isinstance(store, LocalArtifacts) and store.presigned_url("k", "f", "t", 60) is None
    with pytest.raises(ValueError, match="BOTREPORTS_ARTIFACTS"):
        open_artifacts("ftp://somewhere", tmp_path)


@pytest.fixture
def s3_reports(s3_bucket, tmp_path, botreports_demo_db):
    from botreports import Reports

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(botreports_demo_db, data_dir / "analytics.db")
    reports = Reports(data_dir=data_dir, load_entrypoints=False, queue="immediate",
                      artifacts_url=f"s3://{s3_bucket}/files", secret="a-secret-every-host-shares-" + "x" * 8)
    yield reports
    reports.close()


def test_reports_are_stored_streamed_linked_and_deleted_in_the_bucket(s3_reports, s3_bucket, principal_factory):
    reports = s3_reports
    report = reports.generate(principal_factory("report_creator"), USAGE)
    assert report.state == "completed", report.error
    key = f"files/reports/{report.id}.csv"
    assert set(objects_in(s3_bucket)) == {key}
    assert list(reports.reports_dir.glob("*")) == []  # nothing kept on this host
    plain, _ = reports.create_api_key("org-acme", "report_admin", "t")
    server = LiveServer(reports)
    try:
        response = server.request("GET", f"{BASE}/{report.id}/download", plain)
        assert response.status_code == 200
        assert hashlib.sha256(response.content).hexdigest() == report.artifact_sha256
        assert int(response.headers["Content-Length"]) == len(response.content) == report.artifact_size
        rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
        assert len(rows) > 1 and all(len(row) for row in rows)
        link = server.request("GET", f"{BASE}/{report.id}/download?as=link", plain).json()
        anonymous = requests.get(link["url"], timeout=30)
        assert anonymous.status_code == 200 and anonymous.content == response.content
        assert server.request("DELETE", f"{BASE}/{report.id}", plain).status_code in (200, 204)
        assert objects_in(s3_bucket) == {}
    finally:
        server.stop()


def test_a_presigned_url_downloads_without_credentials(s3_reports, s3_bucket, principal_factory):
    report = s3_reports.generate(principal_factory("report_creator"), USAGE)
    url = s3_reports.artifacts.presigned_url(report.artifact_path, report.filename, report.media_type, 60)
    response = requests.get(url, timeout=30)
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == report.artifact_sha256
    assert report.filename.split(".")[0] in response.headers["Content-Disposition"]
    assert requests.get(url.split("?")[0], timeout=30).status_code == 403  # the signature is the credential


def test_retention_removes_the_objects(s3_reports, s3_bucket, principal_factory):
    from botreports.core.jobs import sweep_expired

    first = s3_reports.generate(principal_factory("report_creator"), USAGE)
    second = s3_reports.generate(principal_factory("report_creator"), {**USAGE, "format": "json"})
    assert len(objects_in(s3_bucket)) == 2
    s3_reports.store.update_report(first.id, expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1))
    assert sweep_expired(s3_reports) == 1
    assert set(objects_in(s3_bucket)) == {f"files/reports/{second.id}.json"}
    assert s3_reports.store.get_report(first.id).state == "expired"


def test_a_report_is_completed_only_once_its_object_is_stored(s3_reports, s3_bucket, principal_factory):
    import boto3

    boto3.client("s3").delete_bucket(Bucket=s3_bucket)  # the upload will be refused
    report = s3_reports.generate(principal_factory("report_creator"), USAGE)
    assert report.state == "failed" and "NoSuchBucket" in report.error and "/tmp" not in report.error
    assert report.artifact_path is None
    assert [p.name for p in s3_reports.reports_dir.iterdir()] == []  # no file left behind
