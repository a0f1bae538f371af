"""Build khabar's Kibana saved objects (data views, Lens visualisations, dashboards) as NDJSON.

    python tools/build_dashboards.py            # writes deploy/kibana/khabar.ndjson
    python tools/build_dashboards.py --check    # exit 1 if the committed file differs from the build

The panels are declared compactly below (``Panel``) and expanded into Kibana 8.x Lens saved objects:
``formBased`` datasource layers with ``terms`` / ``date_histogram`` bucket columns and metric
columns, filter pills carrying Elasticsearch DSL, and dashboards referencing the Lens objects by id.
Ids are derived from names (uuid5), so a rebuild produces byte-identical output.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from khabar.dashboards import dumps_ndjson, validate_objects  # noqa: E402

OUT = ROOT / "deploy" / "kibana" / "khabar.ndjson"
NS = uuid.UUID("6b6a6261-7200-4b69-6261-6e6100000000")  # fixed namespace for deterministic ids
CORE_MIGRATION = "8.8.0"
# Versions as Kibana 8.x exports them; Kibana 8.19 migrates anything newer it knows on import.
TYPE_MIGRATION = {"index-pattern": "8.0.0", "lens": "8.9.0", "dashboard": "8.7.0", "visualization": "7.14.0"}
PANEL_VERSION = "8.11.0"
DEFAULT_FROM, DEFAULT_TO = "now-20y", "now"


def uid(*parts: str) -> str:
    """A stable uuid from names."""
    return str(uuid.uuid5(NS, "/".join(parts)))


# --- data views ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class View:
    id: str
    name: str
    pattern: str
    time_field: str


ARTICLES = View("khabar-articles", "khabar articles", "khabar-articles*", "timestamp")
ENTITIES = View("khabar-entities", "khabar entity mentions", "khabar-entities*", "timestamp")
QUOTES = View("khabar-quotes", "khabar quotes", "khabar-quotes*", "timestamp")
# Same indices, on ingest time: what the pipeline did when, whatever the articles' dates.
INGEST = View("khabar-articles-ingest", "khabar articles (ingest time)", "khabar-articles*", "ingested_at")
VIEWS = (ARTICLES, ENTITIES, QUOTES, INGEST)


def data_view(v: View) -> dict[str, Any]:
    return {
        "id": v.id, "type": "index-pattern", "coreMigrationVersion": CORE_MIGRATION,
        "typeMigrationVersion": TYPE_MIGRATION["index-pattern"], "managed": False, "references": [],
        "attributes": {"title": v.pattern, "name": v.name, "timeFieldName": v.time_field,
                       "fields": "[]", "fieldAttrs": "{}", "fieldFormatMap": "{}", "runtimeFieldMap": "{}",
                       "sourceFilters": "[]", "typeMeta": "{}", "allowNoIndex": True},
    }


# --- columns and panels -------------------------------------------------------------------------

@dataclass(frozen=True)
class Col:
    """A Lens column: ``terms``/``date_histogram`` buckets or ``count``/``unique_count``/… metrics."""

    op: str
    field: str | None = None
    label: str | None = None
    size: int = 10
    missing: bool = False  # "(missing value)" bucket: undated or source-less articles still count
    other: bool = False
    order_by: str | None = None  # a metric column key, "alpha", or None for the first metric
    interval: str = "auto"
    key: str | None = None

    @property
    def name(self) -> str:
        return self.key or f"{self.op}-{self.field or 'records'}"

    @property
    def bucketed(self) -> bool:
        return self.op in ("terms", "date_histogram")


def exists(f: str, negate: bool = False) -> dict[str, Any]:
    return {"meta": {"type": "exists", "key": f, "value": "exists", "negate": negate, "disabled": False,
                     "alias": None},
            "query": {"exists": {"field": f}}, "$state": {"store": "appState"}}


def phrase(f: str, value: str, negate: bool = False) -> dict[str, Any]:
    return {"meta": {"type": "phrase", "key": f, "params": {"query": value}, "negate": negate,
                     "disabled": False, "alias": None},
            "query": {"match_phrase": {f: value}}, "$state": {"store": "appState"}}


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    view: View
    chart: str  # bar_stacked, bar_horizontal_stacked, line, area_stacked, datatable, metric, donut
    cols: Sequence[Col]
    filters: Sequence[dict[str, Any]] = ()
    description: str = ""
    w: int = 24
    h: int = 12


_DATA_TYPE = {"terms": "string", "date_histogram": "date"}
_NUMERIC_FIELDS = {"kafka.partition", "kafka.offset", "mention_count", "quote_count", "boilerplate_count",
                   "language_confidence"}
_DATE_FIELDS = {"timestamp", "published_at", "ingested_at"}
_LABELS = {"count": "Count of records", "unique_count": "Unique count of {f}", "max": "Maximum of {f}",
           "min": "Minimum of {f}", "sum": "Sum of {f}", "average": "Average of {f}"}


def _column(c: Col, ids: dict[str, str], first_metric: str | None) -> dict[str, Any]:
    label = c.label or (f"Top values of {c.field}" if c.op == "terms" else
                        c.field if c.op == "date_histogram" else _LABELS[c.op].format(f=c.field))
    col: dict[str, Any] = {"label": label, "customLabel": c.label is not None, "operationType": c.op,
                           "isBucketed": c.bucketed}
    if c.op == "terms":
        col.update(dataType="number" if c.field in _NUMERIC_FIELDS else "string", scale="ordinal",
                   sourceField=c.field)
        order_by = ({"type": "alphabetical", "fallback": False} if c.order_by == "alpha" else
                    {"type": "column", "columnId": ids[c.order_by or first_metric or ""]})
        col["params"] = {"size": c.size, "orderBy": order_by,
                         "orderDirection": "asc" if c.order_by == "alpha" else "desc",
                         "otherBucket": c.other, "missingBucket": c.missing, "parentFormat": {"id": "terms"}}
    elif c.op == "date_histogram":
        col.update(dataType="date", scale="interval", sourceField=c.field,
                   params={"interval": c.interval, "includeEmptyRows": True, "dropPartials": False})
    elif c.op == "count":
        col.update(dataType="number", scale="ratio", sourceField="___records___", params={"emptyAsNull": True})
    else:
        dtype = "date" if c.field in _DATE_FIELDS and c.op in ("min", "max") else "number"
        col.update(dataType=dtype, scale="ratio", sourceField=c.field,
                   params={"emptyAsNull": True} if c.op == "unique_count" else {})
    return col


def lens(p: Panel) -> dict[str, Any]:
    layer = uid(p.key, "layer")
    ids = {c.name: uid(p.key, c.name) for c in p.cols}
    metrics = [c for c in p.cols if not c.bucketed]
    buckets = [c for c in p.cols if c.bucketed]
    first_metric = metrics[0].name if metrics else None
    columns = {ids[c.name]: _column(c, ids, first_metric) for c in p.cols}
    order = [ids[c.name] for c in p.cols]
    if p.chart == "datatable":
        vis_type = "lnsDatatable"
        visualization: dict[str, Any] = {
            "layerId": layer, "layerType": "data", "rowHeight": "single", "headerRowHeight": "single",
            "columns": [{"columnId": i, "isTransposed": False} for i in order]}
    elif p.chart == "metric":
        vis_type = "lnsMetric"
        visualization = {"layerId": layer, "layerType": "data", "metricAccessor": ids[metrics[0].name]}
        if len(metrics) > 1:
            visualization["secondaryMetricAccessor"] = ids[metrics[1].name]
    elif p.chart == "donut":
        vis_type = "lnsPie"
        visualization = {"shape": "donut", "layers": [{
            "layerId": layer, "layerType": "data", "primaryGroups": [ids[b.name] for b in buckets],
            "metrics": [ids[metrics[0].name]], "numberDisplay": "percent", "categoryDisplay": "default",
            "legendDisplay": "default", "nestedLegend": False}]}
    else:
        vis_type = "lnsXY"
        # Lens draws the date or first bucket on the x axis and breaks down by the next one.
        x = next((b for b in buckets if b.op == "date_histogram"), buckets[0])
        split = next((b for b in buckets if b is not x), None)
        data_layer: dict[str, Any] = {"layerId": layer, "layerType": "data", "seriesType": p.chart,
                                      "xAccessor": ids[x.name], "accessors": [ids[m.name] for m in metrics],
                                      "position": "top", "showGridlines": False}
        if split is not None:
            data_layer["splitAccessor"] = ids[split.name]
        visualization = {"legend": {"isVisible": split is not None or len(metrics) > 1, "position": "right"},
                         "valueLabels": "hide", "fittingFunction": "None", "preferredSeriesType": p.chart,
                         "axisTitlesVisibilitySettings": {"x": True, "yLeft": True, "yRight": True},
                         "tickLabelsVisibilitySettings": {"x": True, "yLeft": True, "yRight": True},
                         "gridlinesVisibilitySettings": {"x": True, "yLeft": True, "yRight": True},
                         "layers": [data_layer]}
    references = [{"type": "index-pattern", "id": p.view.id, "name": f"indexpattern-datasource-layer-{layer}"}]
    filters = []
    for i, f in enumerate(p.filters):
        f = json.loads(json.dumps(f))
        ref_name = f"filter-index-pattern-{i}"
        f["meta"]["indexRefName"] = ref_name
        references.append({"type": "index-pattern", "id": p.view.id, "name": ref_name})
        filters.append(f)
    return {
        "id": f"khabar-{p.key}", "type": "lens", "coreMigrationVersion": CORE_MIGRATION,
        "typeMigrationVersion": TYPE_MIGRATION["lens"], "managed": False, "references": references,
        "attributes": {
            "title": p.title, "description": p.description, "visualizationType": vis_type,
            "state": {"visualization": visualization, "query": {"query": "", "language": "kuery"},
                      "filters": filters, "internalReferences": [], "adHocDataViews": {},
                      "datasourceStates": {"formBased": {"layers": {layer: {
                          "columns": columns, "columnOrder": order, "incompleteColumns": {},
                          "sampling": 1}}},
                                           "indexpattern": {"layers": {}}, "textBased": {"layers": {}}}},
        },
    }


def markdown(key: str, title: str, text: str) -> dict[str, Any]:
    vis_state = {"title": title, "type": "markdown", "aggs": [],
                 "params": {"fontSize": 12, "openLinksInNewTab": False, "markdown": text}}
    return {"id": f"khabar-{key}", "type": "visualization", "coreMigrationVersion": CORE_MIGRATION,
            "typeMigrationVersion": TYPE_MIGRATION["visualization"], "managed": False, "references": [],
            "attributes": {"title": title, "description": "", "version": 1, "uiStateJSON": "{}",
                           "visState": json.dumps(vis_state, ensure_ascii=False),
                           "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(
                               {"query": {"query": "", "language": "kuery"}, "filter": []})}}}


@dataclass
class Dashboard:
    key: str
    title: str
    description: str
    panels: list[Panel]
    notes: str = ""
    time_from: str = DEFAULT_FROM
    time_to: str = DEFAULT_TO
    extra: list[dict[str, Any]] = field(default_factory=list)


DASHBOARD_NAV = [("overview", "Overview"), ("entities", "Entities"), ("quotes", "Who said what"),
                 ("claims", "Contested claims"), ("stories", "Stories"), ("health", "Pipeline health")]


def dashboard(d: Dashboard) -> list[dict[str, Any]]:
    nav = " · ".join(f"**{t}**" if k == d.key else f"[{t}](#/view/khabar-dashboard-{k})" for k, t in DASHBOARD_NAV)
    note = markdown(f"{d.key}-notes", f"{d.title}: notes", nav + ("\n\n" + d.notes if d.notes else ""))
    panels_json = []
    references = []
    x = y = 0
    row_h = 0
    items: list[tuple[str, str, int, int]] = [(note["id"], "visualization", 48, 5 if not d.notes else 8)]
    items += [(f"khabar-{p.key}", "lens", p.w, p.h) for p in d.panels]
    for n, (obj_id, obj_type, w, h) in enumerate(items, 1):
        if x + w > 48:
            x, y, row_h = 0, y + row_h, 0
        index = f"p{n}"
        panels_json.append({"version": PANEL_VERSION, "type": obj_type, "panelIndex": index,
                            "gridData": {"x": x, "y": y, "w": w, "h": h, "i": index},
                            "embeddableConfig": {"enhancements": {}}, "panelRefName": f"panel_{index}"})
        references.append({"type": obj_type, "id": obj_id, "name": f"{index}:panel_{index}"})
        x += w
        row_h = max(row_h, h)
    dash = {
        "id": f"khabar-dashboard-{d.key}", "type": "dashboard", "coreMigrationVersion": CORE_MIGRATION,
        "typeMigrationVersion": TYPE_MIGRATION["dashboard"], "managed": False, "references": references,
        "attributes": {
            "title": d.title, "description": d.description, "version": 1, "timeRestore": True,
            "timeFrom": d.time_from, "timeTo": d.time_to, "refreshInterval": {"pause": True, "value": 60000},
            "panelsJSON": json.dumps(panels_json, ensure_ascii=False),
            "optionsJSON": json.dumps({"useMargins": True, "syncColors": True, "syncCursor": True,
                                       "syncTooltips": False, "hidePanelTitles": False}),
            "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(
                {"query": {"query": "", "language": "kuery"}, "filter": []})},
        },
    }
    return [note, *[lens(p) for p in d.panels], dash]


# --- the dashboards -----------------------------------------------------------------------------

COUNT = Col("count", label="Articles")
T_ART = Col("date_histogram", "timestamp", label="Date (published, else ingested)")

OVERVIEW = Dashboard("overview", "khabar · Overview", "Articles over time by language and source.", [
    Panel("articles-total", "Articles", ARTICLES, "metric",
          [COUNT, Col("unique_count", "language", label="Languages")], w=12, h=8),
    Panel("articles-dated", "Articles with a publication date", ARTICLES, "metric",
          [COUNT, Col("unique_count", "published_at_original.calendar", label="Calendars")],
          filters=[exists("published_at")], w=12, h=8,
          description="Undated articles are placed at their ingest time in every time chart."),
    Panel("articles-languages", "Articles by language", ARTICLES, "donut",
          [Col("terms", "language", label="Language", size=5, missing=True), COUNT], w=24, h=8),
    Panel("articles-over-time-language", "Articles over time by language", ARTICLES, "bar_stacked",
          [T_ART, Col("terms", "language", label="Language", size=5, missing=True), COUNT], w=24, h=14),
    Panel("articles-over-time-source", "Articles over time by source", ARTICLES, "bar_stacked",
          [T_ART, Col("terms", "source", label="Source", size=10, missing=True, other=True), COUNT], w=24, h=14),
    Panel("sources-table", "Sources", ARTICLES, "datatable",
          [Col("terms", "source", label="Source", size=50, missing=True),
           Col("terms", "language", label="Language", size=5, missing=True), COUNT,
           Col("min", "timestamp", label="First article"), Col("max", "timestamp", label="Last article")],
          w=48, h=12),
], notes="Time axis: `timestamp` = `published_at` when the article is dated, else the ingest time. "
         "A source shown as *(missing value)* was submitted without `source`.")

ENT_COUNT = Col("count", label="Articles mentioning")
ENTITY_PANELS = []
for etype, what in (("PER", "people"), ("ORG", "organisations"), ("LOC", "places")):
    ENTITY_PANELS.append(Panel(
        f"entities-top-{what}", f"Top {what}", ENTITIES, "bar_horizontal_stacked",
        [Col("terms", "name", label="Canonical name", size=15), ENT_COUNT],
        filters=[phrase("type", etype)], w=16, h=16,
        description=f"{what.capitalize()} by the number of articles that mention them (canonical names, "
                    "one entity across languages and spellings)."))
ENTITIES_DASH = Dashboard("entities", "khabar · Entities",
                          "Top people, organisations and places over time, by canonical name.", [
    *ENTITY_PANELS,
    Panel("entities-people-over-time", "Top people over time", ENTITIES, "line",
          [Col("date_histogram", "timestamp", label="Date"),
           Col("terms", "name", label="Person", size=5), ENT_COUNT],
          filters=[phrase("type", "PER")], w=24, h=14),
    Panel("entities-places-over-time", "Top places over time", ENTITIES, "line",
          [Col("date_histogram", "timestamp", label="Date"),
           Col("terms", "name", label="Place", size=5), ENT_COUNT],
          filters=[phrase("type", "LOC")], w=24, h=14),
    Panel("entities-table", "Entity directory", ENTITIES, "datatable",
          [Col("terms", "entity_id", label="Entity id", size=100),
           Col("terms", "type", label="Type", size=4),
           Col("terms", "name_en", label="English", size=1, missing=True),
           ENT_COUNT, Col("sum", "mention_count", label="Mentions"),
           Col("unique_count", "language", label="Languages")],
          w=48, h=16),
], notes="Names are canonical (English where known). Click a name to filter every panel.")

Q_COUNT = Col("count", label="Quotes")
QUOTES_DASH = Dashboard("quotes", "khabar · Who said what", "Quotes by speaker, via outlet and stance.", [
    Panel("quotes-by-speaker", "Quotes by speaker and stance", QUOTES, "bar_horizontal_stacked",
          [Col("terms", "speaker_name", label="Speaker", size=20, order_by="count-records"),
           Col("terms", "stance", label="Stance", size=5, missing=True), Q_COUNT], w=24, h=18),
    Panel("quotes-via", "Quotes reported via an outlet", QUOTES, "bar_horizontal_stacked",
          [Col("terms", "via_name", label="Via", size=15),
           Col("terms", "stance", label="Stance", size=5, missing=True), Q_COUNT],
          filters=[exists("via_name")], w=24, h=10),
    Panel("quotes-stance", "Stance", QUOTES, "donut",
          [Col("terms", "stance", label="Stance", size=5, missing=True), Q_COUNT], w=12, h=8),
    Panel("quotes-kind", "Direct and indirect quotes", QUOTES, "donut",
          [Col("terms", "kind", label="Kind", size=3, missing=True), Q_COUNT], w=12, h=8),
    Panel("quotes-over-time", "Quotes over time by stance", QUOTES, "bar_stacked",
          [Col("date_histogram", "timestamp", label="Date"),
           Col("terms", "stance", label="Stance", size=5, missing=True), Q_COUNT], w=24, h=12),
    Panel("quotes-table", "Speaker, outlet, cue", QUOTES, "datatable",
          [Col("terms", "speaker_name", label="Speaker", size=50),
           Col("terms", "via_name", label="Via", size=5, missing=True),
           Col("terms", "stance", label="Stance", size=5, missing=True),
           Col("terms", "cue", label="Reporting cue", size=5, missing=True), Q_COUNT,
           Col("unique_count", "article_id", label="Articles")], w=48, h=16),
], notes="*Speaker* is the speaker's canonical name when resolved, else the text as written. *Via* is "
         "the outlet a quote is attributed through (\"…, Reuters reported\").")

CLAIM = [exists("claim_id")]
CLAIMS_DASH = Dashboard("claims", "khabar · Contested claims",
                        "Claims asserted and denied, and by whom.", [
    Panel("claims-stance", "Claims: asserted vs denied", QUOTES, "bar_horizontal_stacked",
          [Col("terms", "claim_id", label="Claim", size=15),
           Col("terms", "stance", label="Stance", size=5), Q_COUNT], filters=CLAIM, w=48, h=14),
    Panel("claims-denied", "Claims with a denial", QUOTES, "metric",
          [Col("unique_count", "claim_id", label="Denied claims"),
           Col("unique_count", "speaker_name", label="Denying speakers")],
          filters=[*CLAIM, phrase("stance", "deny")], w=12, h=8),
    Panel("claims-total", "Claims", QUOTES, "metric",
          [Col("unique_count", "claim_id", label="Claims"), Col("unique_count", "article_id", label="Articles")],
          filters=CLAIM, w=12, h=8),
    Panel("claims-by-speaker", "Who asserts, who denies", QUOTES, "bar_horizontal_stacked",
          [Col("terms", "speaker_name", label="Speaker", size=15),
           Col("terms", "stance", label="Stance", size=5), Q_COUNT], filters=CLAIM, w=24, h=16),
    Panel("claims-table", "Claim, stance, speaker, outlet", QUOTES, "datatable",
          [Col("terms", "claim_id", label="Claim", size=50),
           Col("terms", "stance", label="Stance", size=5),
           Col("terms", "speaker_name", label="Speaker", size=20),
           Col("terms", "via_name", label="Via", size=5, missing=True), Q_COUNT,
           Col("unique_count", "language", label="Languages"),
           Col("min", "timestamp", label="First"), Col("max", "timestamp", label="Last")],
          filters=CLAIM, w=48, h=18),
], notes="A claim id names the event claimed (predicate, participants, place), so one claim collects "
         "quotes across languages and outlets. Filter on `stance: deny` to see the denials.")

STORY = [exists("story_id")]
STORIES_DASH = Dashboard("stories", "khabar · Stories", "Stories reported by several articles: size, "
                         "languages and sources.", [
    Panel("stories-total", "Stories", ARTICLES, "metric",
          [Col("unique_count", "story_id", label="Stories"), Col("count", label="Articles in stories")],
          filters=STORY, w=12, h=8),
    Panel("stories-size", "Largest stories by language", ARTICLES, "bar_horizontal_stacked",
          [Col("terms", "story_id", label="Story", size=15),
           Col("terms", "language", label="Language", size=5, missing=True), COUNT],
          filters=STORY, w=36, h=14),
    Panel("stories-sources", "Sources per story", ARTICLES, "bar_horizontal_stacked",
          [Col("terms", "story_id", label="Story", size=15),
           Col("terms", "source", label="Source", size=10, missing=True), COUNT],
          filters=STORY, w=24, h=14),
    Panel("stories-over-time", "Story articles over time", ARTICLES, "bar_stacked",
          [T_ART, Col("terms", "story_id", label="Story", size=8), COUNT], filters=STORY, w=24, h=14),
    Panel("stories-table", "Story table", ARTICLES, "datatable",
          [Col("terms", "story_id", label="Story", size=100), COUNT,
           Col("unique_count", "language", label="Languages"), Col("unique_count", "source", label="Sources"),
           Col("unique_count", "duplicate_of", label="Copies"),
           Col("min", "timestamp", label="First article"), Col("max", "timestamp", label="Last article")],
          filters=STORY, w=48, h=14),
], notes="Articles share a `story_id` when they report the same story across languages and sources.")

HEALTH_DASH = Dashboard("health", "khabar · Pipeline health", "What the ingest pipeline indexed, when, from "
                        "which Kafka partitions.", [
    Panel("health-indexed", "Articles indexed", INGEST, "metric",
          [Col("count", label="Articles indexed"), Col("max", "ingested_at", label="Last ingest")], w=12, h=8),
    Panel("health-partitions", "Kafka partitions", INGEST, "metric",
          [Col("unique_count", "kafka.partition", label="Partitions"),
           Col("unique_count", "kafka.topic", label="Topics")], w=12, h=8),
    Panel("health-languages", "Language detection: mean confidence", INGEST, "metric",
          [Col("average", "language_confidence", label="Mean language confidence"),
           Col("average", "boilerplate_count", label="Boilerplate blocks per article")], w=12, h=8),
    Panel("health-quotes", "Enrichment yield", INGEST, "metric",
          [Col("sum", "quote_count", label="Quotes"), Col("average", "quote_count", label="Quotes per article")],
          w=12, h=8),
    Panel("health-throughput", "Articles indexed over time by topic", INGEST, "bar_stacked",
          [Col("date_histogram", "ingested_at", label="Ingested at"),
           Col("terms", "kafka.topic", label="Topic", size=5, missing=True), Col("count", label="Articles")],
          w=24, h=14),
    Panel("health-language-over-time", "Indexed by language over time", INGEST, "bar_stacked",
          [Col("date_histogram", "ingested_at", label="Ingested at"),
           Col("terms", "language", label="Language", size=5, missing=True), Col("count", label="Articles")],
          w=24, h=14),
    Panel("health-offsets", "Offsets per partition", INGEST, "datatable",
          [Col("terms", "kafka.topic", label="Topic", size=10, order_by="alpha"),
           Col("terms", "kafka.partition", label="Partition", size=100, order_by="alpha"),
           Col("count", label="Articles"), Col("min", "kafka.offset", label="First offset"),
           Col("max", "kafka.offset", label="Last offset"), Col("max", "ingested_at", label="Last ingest")],
          w=48, h=12,
          description="Last offset − first offset + 1 − articles = records of that range not indexed as "
                      "articles (dead-lettered, or replaced by a later version of the same id)."),
], notes="Time axis: ingest time. Dead letters live on the Kafka topic `khabar.documents.dlq`, not in "
         "Elasticsearch: read them with `khabar dlq` (by stage and reason) and `khabar status`.",
    time_from="now-7d")

DASHBOARDS = (OVERVIEW, ENTITIES_DASH, QUOTES_DASH, CLAIMS_DASH, STORIES_DASH, HEALTH_DASH)


def build() -> list[dict[str, Any]]:
    """All saved objects: data views first, then per dashboard its notes, Lens panels and itself."""
    objects = [data_view(v) for v in VIEWS]
    for d in DASHBOARDS:
        objects.extend(dashboard(d))
    problems = validate_objects(objects)
    if problems:
        raise SystemExit("invalid saved objects:\n" + "\n".join(problems))
    return objects


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    args = parser.parse_args(argv)
    text = dumps_ndjson(build())
    if args.check:
        current = args.out.read_text("utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date: run python tools/build_dashboards.py", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    args.out.write_text(text, "utf-8")
    print(f"wrote {len(text.splitlines())} saved objects to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
