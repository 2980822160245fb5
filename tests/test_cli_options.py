"""``botreports generate --option``: a format's options and a section's (``SECTION.KEY=VALUE``),
each value read as its declared type; a bad one exits 2 naming it."""
import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from botreports.adapters.cli_options import option_value
from botreports.testing import DEMO

BIN = str(Path(sys.executable).with_name("botreports"))
PERIOD = ["--start", "2025-01-18", "--end", str(DEMO["end_date"]), "--org", "org-acme"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, botreports_demo_db):
    folder = tmp_path_factory.mktemp("cli-options")
    shutil.copy(botreports_demo_db, folder / "analytics.db")
    return folder


def generate(data_dir, out, *args):
    return subprocess.run([BIN, "generate", "--data-dir", str(data_dir), *PERIOD, "--out", str(out), *args],
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "BOTREPORTS_LOAD_PLUGINS": ""})


def test_format_and_section_options_reach_the_report(data_dir, tmp_path):
    plain, tuned = tmp_path / "plain.csv", tmp_path / "tuned.csv"
    assert generate(data_dir, plain, "--type", "usage", "--format", "csv").returncode == 0
    done = generate(data_dir, tuned, "--type", "usage", "--format", "csv", "--option", "csv_dialect=semicolon",
                    "--option", "csv_header=labels", "--option", "csv_bom=yes")
    assert done.returncode == 0, done.stderr
    commas = list(csv.reader(io.StringIO(plain.read_text("utf-8"))))
    raw = tuned.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    semicolons = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    assert len(semicolons) == len(commas) > 1 and semicolons[0] != commas[0]  # labels, not names
    assert [row[0] for row in semicolons[1:]] == [row[0] for row in commas[1:]]

    full, top3 = tmp_path / "full.json", tmp_path / "top3.json"
    base = ["--type", "custom", "--format", "json", "--sections", "top_intents,handoffs"]
    assert generate(data_dir, full, *base).returncode == 0
    done = generate(data_dir, top3, *base, "--option", "top_intents.limit=3")
    assert done.returncode == 0, done.stderr

    def intent_rows(path):
        document = json.loads(path.read_text())
        section = next(s for s in document["sections"] if s["name"] == "top_intents")
        return next(b for b in section["blocks"] if b["kind"] == "table")["rows"]

    assert len(intent_rows(full)) > 3
    assert intent_rows(top3) == intent_rows(full)[:3]


@pytest.mark.parametrize("args,message", [
    (["--type", "usage", "--format", "csv", "--option", "csv_dialect=tab"],
     "--option (options.csv_dialect): must be one of comma, semicolon"),
    (["--type", "usage", "--format", "csv", "--option", "csv_bom=maybe"],
     "--option csv_bom: 'maybe' is not of type bool"),
    (["--type", "custom", "--format", "json", "--sections", "top_intents", "--option", "top_intents.limit=many"],
     "--option top_intents.limit: 'many' is not of type int"),
    (["--type", "custom", "--format", "json", "--sections", "top_intents", "--option", "top_intents.limit=0"],
     "--option (sections[0].limit): must be at least 1"),
    (["--type", "usage", "--format", "json", "--option", "top_intnets.limit=3"],
     "--option top_intnets.limit: unknown section 'top_intnets'"),
    (["--type", "usage", "--format", "json", "--option", "top_intents.limit=3"],
     "section 'top_intents' is not in this report"),
    (["--type", "usage", "--format", "json", "--option", "verbose"], "--option verbose: must be KEY=VALUE"),
])
def test_a_bad_option_exits_2_naming_it(data_dir, tmp_path, args, message):
    done = generate(data_dir, tmp_path / "x", *args)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "x").exists()


@given(st.integers())
def test_an_int_reads_back(value):
    assert option_value(str(value), "int") == value


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters=",", blacklist_categories=("Cs", "Zs", "Cc")),
                        min_size=1), max_size=5))
def test_a_list_reads_as_json_or_comma_separated(items):
    assert option_value(json.dumps(items), "list") == items
    if not any(item.startswith("[") for item in items[:1]):
        assert option_value(",".join(items), "list") == [item.strip() for item in items if item.strip()]


def test_listing_plugins_leaves_no_data_directory(tmp_path):
    target = tmp_path / "data"
    done = subprocess.run([BIN, "plugins", "--json", "--data-dir", str(target)], capture_output=True, text=True,
                          cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "BOTREPORTS_LOAD_PLUGINS": ""})
    assert done.returncode == 0, done.stderr
    assert "json" in {item["name"] for item in json.loads(done.stdout)["exporters"]}
    assert list(tmp_path.iterdir()) == []
