"""The stream an exporter writes to is a real file object: libraries that write files (zipfile,
io.TextIOWrapper, and those that close their sink when done, as pyarrow does) work on it, the
artifact holds and hashes exactly what they wrote, and an exporter's failure names its format
and its plugin."""
import csv
import hashlib
import io
import shutil
import zipfile

import pytest
from hypothesis import given, settings, strategies as st

from botreports import Exporter, Principal, Reports, hookimpl
from botreports.core.artifact_stream import ArtifactStream
from botreports.core.errors import ExportFailed
from botreports.testing import DEMO, registered

ADMIN = Principal("admin", "org-acme", {"admin"})
PERIOD = {"start_date": "2025-01-25", "end_date": str(DEMO["end_date"])}


def kpi_rows(document):
    return [(item.name, item.value) for section in document.sections for block in section.blocks
            for item in getattr(block, "items", ())]


def zip_export(document, stream, options):
    """Two members through ``zipfile``, which asks ``tell`` and tries ``seek`` on its file."""
    with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("title.txt", document.title)
        archive.writestr("kpis.csv", "".join(f"{name},{value}\n" for name, value in kpi_rows(document)))


def text_export(document, stream, options):
    """CSV through ``io.TextIOWrapper``, which closes the stream under it when closed, as pyarrow's
    writers close their sink."""
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    writer = csv.writer(text)
    writer.writerow(["metric", "value"])
    writer.writerows(kpi_rows(document))
    text.close()
    assert stream.closed


def closes_then_writes(document, stream, options):
    stream.close()
    stream.write(b"too late")


class FileLibraries:
    @hookimpl
    def register_exporters(self):
        return [Exporter("kpizip", ".zip", "application/zip", zip_export),
                Exporter("kpitext", ".csv", "text/csv", text_export),
                Exporter("broken", ".bin", "application/octet-stream", closes_then_writes)]


@pytest.fixture
def reports(tmp_path, botreports_demo_db):
    shutil.copy(botreports_demo_db, tmp_path / "analytics.db")
    rk = Reports(data_dir=tmp_path, load_entrypoints=False, queue="immediate")
    with registered(rk, FileLibraries(), "file-libraries"):
        yield rk
    rk.close()


def generated(rk, fmt):
    report = rk.generate(ADMIN, {"type": "usage", "format": fmt, **PERIOD})
    return rk.get(ADMIN, report.id)


def expected_kpis(rk):
    """The same report's KPIs as the JSON export writes them, read back from its file."""
    import json
    report = generated(rk, "json")
    document = json.loads(rk.download(ADMIN, report.id).path.read_bytes())
    return [(item["name"], item["value"]) for section in document["sections"] for block in section["blocks"]
            for item in block.get("items", ())]


def test_zipfile_writes_a_readable_archive_into_the_stream(reports):
    report = generated(reports, "kpizip")
    assert report.state == "completed", report.error
    file = reports.download(ADMIN, report.id)
    data = file.path.read_bytes()
    assert file.sha256 == hashlib.sha256(data).hexdigest() and file.size == len(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        assert archive.read("title.txt").decode() == report.title
        rows = [line.split(",") for line in archive.read("kpis.csv").decode().splitlines()]
    kpis = expected_kpis(reports)
    assert kpis and [(name, value) for name, value in rows] == [(name, str(value)) for name, value in kpis]


def test_a_text_wrapper_that_closes_the_stream_leaves_a_complete_artifact(reports):
    report = generated(reports, "kpitext")
    assert report.state == "completed", report.error
    file = reports.download(ADMIN, report.id)
    data = file.path.read_bytes()
    assert file.sha256 == hashlib.sha256(data).hexdigest()
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    assert rows[0] == ["metric", "value"]
    assert rows[1:] == [[name, str(value)] for name, value in expected_kpis(reports)]


def test_an_exporter_failure_names_the_format_and_the_plugin(reports, tmp_path):
    report = generated(reports, "broken")
    assert report.state == "failed"
    assert report.error == ("the broken exporter of plugin file-libraries failed: "
                            "ValueError: I/O operation on closed file")
    # synchronously (the command line's generate): the plugin named by the exporter's module
    with pytest.raises(ExportFailed, match=r"the broken exporter of plugin .*test_exports_stream failed") as failed:
        reports.render(ADMIN, {"type": "usage", "format": "broken", **PERIOD}, tmp_path / "out.bin")
    assert isinstance(failed.value.__cause__, ValueError)
    assert not (tmp_path / "out.bin").exists()


def test_the_stream_behaves_as_a_write_only_file(tmp_path):
    with open(tmp_path / "f", "wb") as raw:
        stream = ArtifactStream(raw, name="f")
        assert isinstance(stream, io.RawIOBase)
        assert (stream.writable(), stream.readable(), stream.seekable()) == (True, False, False)
        assert stream.closed is False and stream.tell() == 0 and stream.mode == "wb"
        assert stream.write(memoryview(b"abc")) == 3 and stream.write("é") == 2
        stream.writelines([b"x", bytearray(b"yz")])
        assert stream.tell() == 8
        for refused in (lambda: stream.seek(0), lambda: stream.read(1), stream.fileno, lambda: stream.truncate(0)):
            with pytest.raises(io.UnsupportedOperation):
                refused()
        stream.flush()
        stream.close()
        stream.close()  # twice is fine, as on a file
        assert stream.closed and not raw.closed
        for after in (lambda: stream.write(b"x"), stream.tell, stream.flush):
            with pytest.raises(ValueError, match="closed file"):
                after()
        raw.write(b"!")  # the file itself is the pipeline's to finish
    assert (tmp_path / "f").read_bytes() == "abcé".encode() + b"xyz!"


@settings(max_examples=50, deadline=None)
@given(chunks=st.lists(st.one_of(st.binary(max_size=300), st.text(max_size=100)), max_size=30),
       sync_every=st.integers(1, 400))
def test_size_hash_and_file_are_what_was_written(tmp_path_factory, chunks, sync_every):
    path = tmp_path_factory.mktemp("stream") / "artifact"
    expected = b"".join(c.encode("utf-8") if isinstance(c, str) else c for c in chunks)
    with open(path, "wb") as raw:
        stream = ArtifactStream(raw)
        stream.SYNC_EVERY = sync_every  # the background syncs must not change a byte
        for chunk in chunks:
            stream.write(chunk)
        stream.close()
        stream.settle()
    assert path.read_bytes() == expected
    assert stream.size == len(expected) and stream.digest.hexdigest() == hashlib.sha256(expected).hexdigest()
