"""A third-party exporter installed with pip is discovered through the
``botreports`` entry point and used by ``generate`` like a built-in format."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "botreports-markdown"
BIN = Path(sys.executable).with_name("botreports")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The example package pip-installed into its own directory (the source tree stays clean)."""
    root = tmp_path_factory.mktemp("markdown-plugin")
    source = root / "src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = root / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                           "--target", str(target), str(source)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return target


def run(args, site, data_dir):
    env = {**os.environ, "PYTHONPATH": str(site), "BOTREPORTS_DATA_DIR": str(data_dir)}
    env.pop("BOTREPORTS_LOAD_PLUGINS", None)
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env)


@pytest.fixture
def data_dir(tmp_path, botreports_demo_db):
    directory = tmp_path / "data"
    directory.mkdir()
    shutil.copy(botreports_demo_db, directory / "analytics.db")
    return directory


def test_markdown_exporter_generates_like_a_builtin_format(installed, data_dir, tmp_path):
    json_out, md_out = tmp_path / "usage.json", tmp_path / "usage.md"
    common = ["generate", "--type", "usage", "--start", "2025-01-20", "--end", "2025-01-31"]
    assert run(common + ["--format", "json", "--out", str(json_out)], installed, data_dir).returncode == 0
    done = run(common + ["--format", "markdown", "--out", str(md_out)], installed, data_dir)
    assert done.returncode == 0, done.stderr
    import json
    document = json.loads(json_out.read_text())
    text = md_out.read_text(encoding="utf-8")
    assert text.startswith(f"# {document['title']}\n")
    for section in document["sections"]:
        assert f"## {section['title']}" in text
    kpis = [i for s in document["sections"] for b in s["blocks"] if b["kind"] == "kpis" for i in b["items"]]
    for item in kpis:
        if isinstance(item["value"], int):
            assert f"**{item['label']}**: {item['value']:,}" in text


def test_markdown_exporter_is_listed_with_its_distribution(installed, data_dir):
    done = run(["plugins", "--json"], installed, data_dir)
    assert done.returncode == 0, done.stderr
    import json
    listing = json.loads(done.stdout)
    assert {"name": "markdown", "plugin": "markdown"} in listing["exporters"]
    origin = next(p["origin"] for p in listing["plugins"] if p["name"] == "markdown")
    assert origin == "botreports-markdown 0.1.0"


def test_markdown_exporter_options_are_validated(installed, data_dir, tmp_path):
    code = ("import sys, botreports; from botreports.core.service import SYSTEM; "
            "rk = botreports.Reports(data_dir=sys.argv[1]); "
            "body = {'type': 'usage', 'format': 'markdown', 'period': 'last_7_days', 'options': {'max_table_rows': 0}}\n"
            "try:\n    rk.validate(body)\nexcept botreports.ValidationError as exc:\n    print(exc.details[0]['field'])")
    env = {**os.environ, "PYTHONPATH": str(installed)}
    done = subprocess.run([sys.executable, "-c", code, str(data_dir)], capture_output=True, text=True, env=env)
    assert done.stdout.strip() == "options.max_table_rows", done.stderr
