"""The command line: help everywhere, exit 2 naming a bad argument, keys shown once."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

BIN = str(Path(sys.executable).with_name("botreports"))
COMMANDS = [[], ["demo-data"], ["ingest"], ["generate"], ["keys"], ["keys", "create"], ["plugins"]]


def run(*args, **kwargs):
    return subprocess.run([BIN, *args], capture_output=True, text=True, **kwargs)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_every_command_has_help(command):
    done = run(*command, "--help")
    assert done.returncode == 0
    assert "usage: botreports" in done.stdout


@pytest.mark.parametrize("args,names", [
    (["demo-data", "--days", "many"], "--days"),
    (["generate", "--type", "usage", "--format", "json"], "--out"),
    (["keys", "create", "--org", "org-acme"], "--role"),
    (["frobnicate"], "frobnicate"),
])
def test_bad_arguments_exit_2_naming_the_argument(args, names):
    done = run(*args)
    assert done.returncode == 2
    assert names in done.stderr


def test_invalid_report_parameters_exit_2_naming_the_field(tmp_path):
    done = run("generate", "--data-dir", str(tmp_path), "--type", "usage", "--start", "2025-02-30",
               "--end", "2025-03-01", "--out", str(tmp_path / "x.json"))
    assert done.returncode == 2
    assert "start_date" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("start,end,option", [("9999-12-31", "9999-12-31", "--start"),
                                               ("2025-01-01", "0001-01-01", "--end")])
def test_dates_out_of_range_exit_2_naming_the_option(tmp_path, start, end, option):
    done = run("generate", "--data-dir", str(tmp_path), "--type", "usage", "--start", start, "--end", end,
               "--format", "json", "--out", str(tmp_path / "x.json"))
    assert done.returncode == 2, done.stderr
    assert f"{option} (" in done.stderr and "from 1970-01-01 to 9998-12-31" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "x.json").exists()


def test_keys_create_prints_key_once_and_stores_hash(tmp_path):
    done = run("keys", "create", "--role", "report_admin", "--org", "org-acme", "--data-dir", str(tmp_path))
    assert done.returncode == 0
    key = done.stdout.strip()
    assert key.startswith("brk_") and len(key) > 30
    assert key not in (tmp_path / "botreports.db").read_bytes().decode("latin-1")
    from botreports import Reports, RequestInfo
    principal = Reports(data_dir=tmp_path, load_entrypoints=False).authenticate(
        RequestInfo(headers={"X-API-Key": key}))
    assert principal.roles == {"report_admin"} and principal.org_id == "org-acme"
    bad = run("keys", "create", "--role", "root", "--org", "org-acme", "--data-dir", str(tmp_path))
    assert bad.returncode == 2 and "role" in bad.stderr


def test_keys_list_and_revoke(tmp_path):
    from botreports import Reports, RequestInfo
    from botreports.core.errors import InvalidCredentials, Unauthorized

    data = ["--data-dir", str(tmp_path)]
    acme = run("keys", "create", "--role", "report_viewer", "--org", "org-acme", "--name", "dashboard", *data)
    globex = run("keys", "create", "--role", "admin", "--org", "org-globex", *data)
    acme_key, globex_key = acme.stdout.strip(), globex.stdout.strip()
    listed = run("keys", "list", "--org", "org-acme", *data)
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 1
    key_id, org, role, prefix = listed.stdout.split()[:4]
    assert (org, role, prefix) == ("org-acme", "report_viewer", acme_key[:8] + "...")
    assert "active" in listed.stdout and "dashboard" in listed.stdout and acme_key not in listed.stdout
    assert len(run("keys", "list", *data).stdout.splitlines()) == 2

    done = run("keys", "revoke", key_id, *data)
    assert done.returncode == 0, done.stderr
    assert "revoked" in run("keys", "list", "--org", "org-acme", *data).stdout
    rk = Reports(data_dir=tmp_path, load_entrypoints=False)
    try:
        with pytest.raises((InvalidCredentials, Unauthorized)):
            rk.authenticate(RequestInfo(headers={"X-API-Key": acme_key}))
        assert rk.authenticate(RequestInfo(headers={"X-API-Key": globex_key})).org_id == "org-globex"
    finally:
        rk.close()
    unknown = run("keys", "revoke", "key-nope", *data)
    assert unknown.returncode == 1 and "key-nope" in unknown.stderr


def test_plugins_lists_registries_with_origins(tmp_path):
    done = run("plugins", "--json", "--data-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    names = {p["name"]: p for p in data["plugins"]}
    assert names["botreports.plugins.exporters.json_exporter"]["origin"] == "builtin"
    assert {"name": "usage", "plugin": "botreports.plugins.types.builtin_types"} in data["report_types"]
    assert {"name": "json", "plugin": "botreports.plugins.exporters.json_exporter"} in data["exporters"]
    text = run("plugins", "--data-dir", str(tmp_path)).stdout
    assert "Sections:" in text and "usage_summary" in text


def test_python_dash_m(tmp_path):
    done = subprocess.run([sys.executable, "-m", "botreports", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("botreports ")
