"""GET /api/v1/reports/catalog: every report type, section, format and template with its options
as JSON Schema and where it came from; the schemas say what validation accepts (a request built
from them is accepted, one that breaks them is refused naming the field), and /openapi.json holds
the same schemas."""
import shutil

import jsonschema
import pytest

from botreports import Exporter, Option, Reports, Section, hookimpl

from http_support import BASE, LiveServer, RecordingQueue


def nothing(*args, **kwargs):
    return []


class Funnel:
    """A third-party plugin: one section and one format with options of every kind."""

    @hookimpl
    def register_sections(self):
        return Section("funnel", "Funnel", nothing, description="Steps from greeting to goal.", options={
            "steps": Option("int", default=4, minimum=2, maximum=12, description="How many steps"),
            "ratio": Option("float", default=0.5, minimum=0, maximum=1),
            "order": Option("str", default="desc", choices=("asc", "desc")),
            "goals": Option("list", default=[]), "split": Option("bool", default=False)})

    @hookimpl
    def register_exporters(self):
        return Exporter("funnelcsv", ".fcsv", "text/csv", nothing, title="Funnel CSV",
                        options={"delimiter": Option("str", default=",", choices=(",", ";"))})


@pytest.fixture(scope="module")
def live(tmp_path_factory, botreports_demo_db):
    data_dir = tmp_path_factory.mktemp("catalog") / "data"
    data_dir.mkdir()
    shutil.copy(botreports_demo_db, data_dir / "analytics.db")
    rk = Reports(data_dir=data_dir, load_entrypoints=False, queue=RecordingQueue(), rate_limit=0, max_unfinished=0,
                 plugins=[Funnel()])
    server = LiveServer(rk, threads=2)
    server.viewer = rk.create_api_key("org-acme", "report_viewer")[0]
    server.creator = rk.create_api_key("org-acme", "report_creator")[0]
    admin = rk.create_api_key("org-acme", "report_admin")[0]
    server.template = server.request("POST", f"{BASE}/templates", admin, json={
        "name": "Our funnel", "type": "custom", "format": "funnelcsv", "sections": [{"type": "funnel", "steps": 6}]}
    ).json()["template_id"]
    server.catalog = server.request("GET", f"{BASE}/catalog", server.viewer).json()
    yield server
    server.stop()
    rk.close()


def by(items, key="name"):
    return {item[key]: item for item in items}


def test_a_plugin_section_and_format_with_their_options_and_origin(live):
    funnel = by(live.catalog["sections"])["funnel"]
    assert funnel == {
        "name": "funnel", "title": "Funnel", "description": "Steps from greeting to goal.",
        "plugin": "Funnel", "origin": "embedder",
        "options": {"type": "object", "additionalProperties": False, "properties": {
            "steps": {"type": "integer", "default": 4, "minimum": 2, "maximum": 12, "description": "How many steps"},
            "ratio": {"type": "number", "default": 0.5, "minimum": 0, "maximum": 1},
            "order": {"type": "string", "default": "desc", "enum": ["asc", "desc"]},
            "goals": {"type": "array", "default": []}, "split": {"type": "boolean", "default": False}}}}
    fmt = by(live.catalog["formats"], "format")["funnelcsv"]
    assert fmt["options"]["properties"] == {"delimiter": {"type": "string", "default": ",", "enum": [",", ";"]}}
    assert (fmt["extension"], fmt["media_type"], fmt["title"], fmt["origin"]) == (".fcsv", "text/csv", "Funnel CSV",
                                                                                  "embedder")


def test_everything_registered_is_listed_once_with_its_origin(live):
    rk = live.reports
    catalog = live.catalog
    assert [t["name"] for t in catalog["report_types"]] == sorted(rk.report_types)
    assert [s["name"] for s in catalog["sections"]] == sorted(rk.sections)
    assert [f["format"] for f in catalog["formats"]] == sorted(rk.exporters)
    builtin = [item for kind in ("report_types", "sections", "formats") for item in catalog[kind]
               if item["plugin"].startswith("botreports.plugins.")]
    assert builtin and all(item["origin"] == "builtin" for item in builtin)
    templates = by(catalog["templates"], "template_id")
    assert set(templates) == set(rk.builtin_templates) | {live.template}
    assert (templates[live.template]["origin"], templates[live.template]["plugin"]) == ("organisation", None)
    assert {templates[t]["origin"] for t in rk.builtin_templates} == {"builtin"}
    usage = by(catalog["report_types"])["usage"]
    assert usage["default_sections"] == list(rk.report_types["usage"].default_sections)


def section_request(name, section):
    """A request for ``name`` with every option at its default (or its first choice)."""
    request = {"type": name}
    for option, schema in section["options"]["properties"].items():
        if "default" in schema:
            request[option] = schema["default"]
        elif "enum" in schema:
            request[option] = schema["enum"][0]
    return request


def test_a_request_built_from_each_section_schema_is_accepted(live):
    for section in live.catalog["sections"]:
        request = section_request(section["name"], section)
        jsonschema.validate({k: v for k, v in request.items() if k != "type"}, section["options"])
        answer = live.request("POST", f"{BASE}/generate", live.creator, json={
            "type": "custom", "format": "json", "sections": [request],
            "start_date": "2025-01-20", "end_date": "2025-01-21"})
        assert answer.status_code == 202, (section["name"], answer.json())


@pytest.mark.parametrize("option,value", [("steps", 13), ("steps", 2.5), ("ratio", "half"), ("order", "up"),
                                          ("split", "yes"), ("goals", "signup"), ("colour", "red")])
def test_a_value_the_schema_refuses_is_refused_naming_the_field(live, option, value):
    schema = by(live.catalog["sections"])["funnel"]["options"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({option: value}, schema)
    answer = live.request("POST", f"{BASE}/generate", live.creator, json={
        "type": "custom", "format": "json", "sections": [{"type": "funnel", option: value}],
        "start_date": "2025-01-20", "end_date": "2025-01-21"})
    assert answer.status_code == 400
    assert [d["field"] for d in answer.json()["details"]] == [f"sections[0].{option}"]


def test_openapi_holds_the_same_option_schemas(live):
    document = live.request("GET", "/openapi.json").json()
    components = document["components"]["schemas"]
    for section in live.catalog["sections"]:
        request = components[f"Section.{section['name']}"]
        assert request["properties"]["type"] == {"const": section["name"]} and request["required"] == ["type"]
        assert {k: v for k, v in request["properties"].items() if k != "type"} == section["options"]["properties"]
        assert request["additionalProperties"] is False
    assert {ref["$ref"] for ref in components["SectionRequest"]["oneOf"]} == {
        f"#/components/schemas/Section.{s['name']}" for s in live.catalog["sections"]}
    for fmt in live.catalog["formats"]:
        assert components[f"FormatOptions.{fmt['format']}"]["properties"] == fmt["options"]["properties"]
    assert "/api/v1/reports/catalog" in document["paths"]


def test_the_catalog_needs_credentials_and_takes_no_query(live):
    assert live.request("GET", f"{BASE}/catalog").status_code == 401
    answer = live.request("GET", f"{BASE}/catalog?verbose=1", live.viewer)
    assert answer.status_code == 400 and answer.json()["details"][0]["field"] == "verbose"
