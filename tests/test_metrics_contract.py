"""docs/metrics.md and the section catalog are tied: every KPI and every numeric column a
section shows has a definition in the section's part of the page (formula and unit), and every
section of the catalog has its part."""
import json
import re
from pathlib import Path

from botreports.core.service import SYSTEM

DOC = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
NUMERIC = ("integer", "number", "percent", "duration")
#: Sections declared by their request rather than coded: documented under "Custom metrics".
DECLARED = {"custom_metric"}


def documented(text, catalog):
    """``{section: {name: row cells}}`` from the page's ``### Title (`section`)`` parts."""
    parts = re.split(r"^(#{2,3} .*)$", text, flags=re.MULTILINE)
    found = {}
    for heading, body in zip(parts[1::2], parts[2::2]):
        sections = [name for name in re.findall(r"`([a-z_]+)`", heading) if name in catalog]
        for section in sections:
            rows = found.setdefault(section, {})
            for line in body.splitlines():
                cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
                if not line.startswith("|") or cells[0] in ("name", "") or set(cells[0]) <= set("-: "):
                    continue
                for name in names_in(cells[0]):
                    rows[name] = cells
    return found


def names_in(cell):
    """The names a first cell lists: `a`, `b`, or a numbered run `h00` … `h23`."""
    names = re.findall(r"`([a-z0-9_]+)`", cell)
    if "…" in cell and len(names) == 2:
        (prefix, first), (_, last) = (re.match(r"([a-z_]*)(\d+)$", name).groups() for name in names)
        return [f"{prefix}{n:0{len(first)}d}" for n in range(int(first), int(last) + 1)]
    return names


def shown_numbers(document):
    """``{section: {name}}``: the KPIs and numeric columns each section of a document shows."""
    shown = {}
    for section in document["sections"]:
        names = shown.setdefault(section["name"], set())
        for block in section["blocks"]:
            if block["kind"] == "kpis":
                names.update(item["name"] for item in block["items"])
            elif block["kind"] == "table":
                names.update(column["name"] for column in block["columns"] if column["type"] in NUMERIC)
    return shown


def test_every_number_of_every_section_has_a_definition(reports, tmp_path):
    catalog = set(reports.sections)
    sections = [{"type": name} for name in sorted(catalog - DECLARED)]
    path = reports.render(SYSTEM, {"type": "custom", "format": "json", "start_date": "2025-01-20",
                                   "end_date": "2025-01-26", "timezone": "Europe/Lisbon", "sections": sections},
                          tmp_path / "every.json")
    shown = shown_numbers(json.loads(path.read_text()))
    assert set(shown) == catalog - DECLARED
    text = DOC.read_text(encoding="utf-8")
    found = documented(text, catalog)
    missing_parts = sorted(catalog - DECLARED - set(found))
    assert not missing_parts, f"sections without a part in metrics.md: {missing_parts}"
    undefined = {section: sorted(names - set(found[section])) for section, names in shown.items()
                 if names - set(found[section])}
    assert not undefined, f"numbers shown without a definition in metrics.md: {undefined}"
    for section, rows in found.items():
        for name, cells in rows.items():
            # name | metric | formula (numerator / denominator) | unit: none of them left empty
            assert len(cells) == 4 and all(cells), (section, name, cells)
    assert "## Custom metrics" in text and all(f"`{m}`" in text for m in ("count", "p90", "avg"))


def test_a_number_without_a_definition_is_found(reports):
    """The walk above would notice: a name no row defines is missing from the parsed page."""
    catalog = set(reports.sections)
    found = documented(DOC.read_text(encoding="utf-8"), catalog)
    assert "resolution_rate" in found["conversation_summary"]
    assert "no_such_metric" not in found["conversation_summary"]
    assert [f"h{n:02d}" for n in range(24)] == [name for name in found["peak_hours"] if name.startswith("h")]
    assert documented("### Hand-offs (`handoffs`)\n\n| name | metric | formula | unit |\n|---|---|---|---|\n"
                      "| `closed` | Closed | `count(status ≠ open)` | conversations |\n", catalog) == {
        "handoffs": {"closed": ["`closed`", "Closed", "`count(status ≠ open)`", "conversations"]}}
