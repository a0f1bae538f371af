"""Kibana saved objects: reproducible build, valid references, fields that exist, requests that translate."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from khabar import dashboards
from khabar.dashboards import DashboardError, PanelRequest

ROOT = Path(__file__).resolve().parents[2]
NDJSON = ROOT / "deploy" / "kibana" / "khabar.ndjson"
AGGREGATABLE = {"keyword", "date", "date_nanos", "integer", "long", "short", "byte", "float", "double",
                "half_float", "scaled_float", "boolean", "ip"}


def _builder() -> Any:
    spec = importlib.util.spec_from_file_location("build_dashboards", ROOT / "tools" / "build_dashboards.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return dashboards.load_objects(NDJSON)


def _mapped_fields(properties: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out = {}
    for name, spec in properties.items():
        path = prefix + name
        if "properties" in spec:
            out.update(_mapped_fields(spec["properties"], path + "."))
        else:
            out[path] = spec.get("type", "object")
    return out


@pytest.fixture(scope="module")
def template_fields() -> dict[str, dict[str, str]]:
    """Index pattern of the default prefix -> field -> mapped type, from schemas/index_templates.json."""
    templates = json.loads((ROOT / "schemas" / "index_templates.json").read_text("utf-8"))
    return {f"khabar-{kind}*": _mapped_fields(templates[kind]["template"]["mappings"]["properties"])
            for kind in ("articles", "entities", "quotes")}


def test_committed_ndjson_is_what_the_builder_builds() -> None:
    built = dashboards.dumps_ndjson(_builder().build())
    assert NDJSON.read_text("utf-8") == built, "run python tools/build_dashboards.py"
    assert dashboards.default_ndjson_path().read_text("utf-8") == built


def test_every_line_is_a_saved_object_and_references_resolve(objects: list[dict[str, Any]]) -> None:
    assert dashboards.validate_objects(objects) == []
    for obj in objects:
        assert obj["type"] in {"index-pattern", "lens", "dashboard", "visualization"}
        assert obj["coreMigrationVersion"] == "8.8.0" and obj["typeMigrationVersion"]
        # Kibana refuses objects from a newer stack than itself: nothing past 8.19 may appear.
        assert tuple(int(p) for p in obj["typeMigrationVersion"].split(".")) <= (8, 19, 7)
    titles = {o["attributes"]["title"] for o in objects if o["type"] == "dashboard"}
    assert titles == {"khabar · Overview", "khabar · Entities", "khabar · Who said what",
                      "khabar · Contested claims", "khabar · Stories", "khabar · Pipeline health"}
    views = {o["attributes"]["title"] for o in objects if o["type"] == "index-pattern"}
    assert views == {"khabar-articles*", "khabar-entities*", "khabar-quotes*"}


def test_every_lens_object_is_on_a_dashboard(objects: list[dict[str, Any]]) -> None:
    on_dashboards = {r["id"] for o in objects if o["type"] == "dashboard" for r in o["references"]}
    lens_ids = {o["id"] for o in objects if o["type"] == "lens"}
    assert lens_ids <= on_dashboards
    assert len({r.vis_id for r in dashboards.panel_requests(objects)}) == len(lens_ids)


def test_every_field_used_is_mapped_and_aggregatable(objects: list[dict[str, Any]],
                                                     template_fields: dict[str, dict[str, str]]) -> None:
    used = dashboards.fields_used(objects)
    assert set(used) == set(template_fields)
    problems = []
    for pattern, fields in used.items():
        for f in sorted(fields):
            mapped = template_fields[pattern].get(f)
            if mapped not in AGGREGATABLE:
                problems.append(f"{pattern} {f}: {mapped or 'not in the index template'}")
    assert not problems, problems
    for view in (o for o in objects if o["type"] == "index-pattern"):
        assert template_fields[view["attributes"]["title"]][view["attributes"]["timeFieldName"]] == "date"


def test_fields_check_catches_an_unmapped_field(objects: list[dict[str, Any]],
                                                template_fields: dict[str, dict[str, str]]) -> None:
    broken = json.loads(json.dumps(objects))
    vis = next(o for o in broken if o["id"] == "khabar-quotes-by-speaker")
    layer = next(iter(vis["attributes"]["state"]["datasourceStates"]["formBased"]["layers"].values()))
    next(c for c in layer["columns"].values() if c["operationType"] == "terms")["sourceField"] = "text"
    used = dashboards.fields_used(broken)["khabar-quotes*"]
    assert "text" in used and template_fields["khabar-quotes*"]["text"] not in AGGREGATABLE


def test_validate_catches_dangling_references(objects: list[dict[str, Any]]) -> None:
    without_view = [o for o in objects if o["id"] != "khabar-quotes"]
    problems = dashboards.validate_objects(without_view)
    assert any("khabar-quotes" in p and "not in the file" in p for p in problems)
    without_lens = [o for o in objects if o["id"] != "khabar-claims-stance"]
    assert any("khabar-claims-stance" in p for p in dashboards.validate_objects(without_lens))
    assert any("missing attributes" in p for p in dashboards.validate_objects([{"type": "lens", "id": "x"}]))


def test_requests_translate_filters_time_and_nesting(objects: list[dict[str, Any]]) -> None:
    reqs = {r.vis_id: r for r in dashboards.panel_requests(objects)}
    denied = reqs["khabar-claims-denied"]
    assert denied.index == "khabar-quotes*"
    flt = denied.body["query"]["bool"]["filter"]
    assert flt[0] == {"range": {"timestamp": {"gte": "now-20y", "lte": "now"}}}
    assert {"exists": {"field": "claim_id"}} in flt and {"match_phrase": {"stance": "deny"}} in flt
    over_time = reqs["khabar-articles-over-time-source"]
    (_outer_id, outer), = over_time.body["aggs"].items()
    assert outer["date_histogram"]["field"] == "timestamp"
    assert outer["date_histogram"]["calendar_interval"] == "year"  # Lens "auto" over 20 years
    (_, inner), = outer["aggs"].items()
    assert inner["terms"]["field"] == "source" and inner["terms"]["missing"] == dashboards.MISSING_KEY
    health = reqs["khabar-health-throughput"]
    assert health.time_field == "ingested_at"
    assert health.body["query"]["bool"]["filter"][0]["range"]["ingested_at"]["gte"] == "now-7d"


def test_prefix_rewrites_index_patterns(objects: list[dict[str, Any]]) -> None:
    reqs = dashboards.panel_requests(objects, prefix="test-abc")
    assert {r.index for r in reqs} == {"test-abc-articles*", "test-abc-entities*", "test-abc-quotes*"}
    assert all(o["attributes"]["title"].startswith("khabar-") for o in objects if o["type"] == "index-pattern")


def test_query_strings_are_refused_rather_than_ignored(objects: list[dict[str, Any]]) -> None:
    vis = json.loads(json.dumps(next(o for o in objects if o["id"] == "khabar-quotes-stance")))
    vis["attributes"]["state"]["query"]["query"] = "stance : deny"
    with pytest.raises(DashboardError, match="query strings"):
        dashboards.lens_requests(vis, objects)


def test_rows_flatten_nested_buckets_and_metrics(objects: list[dict[str, Any]]) -> None:
    req: PanelRequest = next(r for r in dashboards.panel_requests(objects) if r.vis_id == "khabar-quotes-table")
    speaker, via, stance, cue = (c.id for c in req.buckets)
    articles = next(c for c in req.metrics if c.operation == "unique_count").id

    def leaf(key: str, n: int) -> dict[str, Any]:
        return {"key": key, "doc_count": n, articles: {"value": 1}}

    response = {"hits": {"total": {"value": 3}}, "aggregations": {speaker: {"buckets": [
        {"key": "Kremlin", "doc_count": 3, via: {"buckets": [
            {"key": dashboards.MISSING_KEY, "doc_count": 3, stance: {"buckets": [
                {"key": "deny", "doc_count": 3, cue: {"buckets": [leaf("نفى", 2), leaf("قال", 1)]}}]}}]}}]}}}
    got = dashboards.rows(req, response)
    assert got == [
        {"Speaker": "Kremlin", "Via": None, "Stance": "deny", "Reporting cue": "نفى", "Quotes": 2, "Articles": 1},
        {"Speaker": "Kremlin", "Via": None, "Stance": "deny", "Reporting cue": "قال", "Quotes": 1, "Articles": 1},
    ]
    metric = next(r for r in dashboards.panel_requests(objects) if r.vis_id == "khabar-articles-total")
    assert dashboards.rows(metric, {"hits": {"total": {"value": 5}}, "aggregations": {
        next(c.id for c in metric.metrics if c.operation == "unique_count"): {"value": 2}}}) == [
        {"Articles": 5, "Languages": 2}]


def test_auth_from_environment_only(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("c2VjcmV0\n")
    assert dashboards.KibanaAuth.from_env({"KHABAR_KIBANA_API_KEY_FILE": str(key_file)}).header() == "ApiKey c2VjcmV0"
    basic = dashboards.KibanaAuth.from_env({"KHABAR_KIBANA_USERNAME": "u", "KHABAR_KIBANA_PASSWORD": "p"})
    assert basic.header() == "Basic dTpw"
    assert dashboards.KibanaAuth.from_env({}).header() is None
    assert dashboards.import_url("http://k:5601/", space="news", overwrite=True) == \
        "http://k:5601/s/news/api/saved_objects/_import?overwrite=true"
    assert dashboards.import_url("http://k:5601", space="default") == "http://k:5601/api/saved_objects/_import"
    with pytest.raises(SystemExit):
        dashboards.main(["install", "--kibana-url", "http://k", "--password", "x"])
