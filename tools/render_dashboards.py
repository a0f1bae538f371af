"""Render the main Kibana panels' data from real Elasticsearch to a PNG, for the docs.

The numbers come from the same search requests the dashboards send (``khabar.dashboards``
translates each Lens panel from ``deploy/kibana/khabar.ndjson``), run on Elasticsearch:

    # the indices of a configuration that already holds articles (default prefix "khabar")
    python tools/render_dashboards.py --es-url http://127.0.0.1:9200 --out docs/dashboards.png

    # or submit the sample articles through the real pipeline (Kafka + Beam) into fresh indices first
    python tools/render_dashboards.py --index-samples tests/fixtures/samples --out docs/dashboards.png

Labels are canonical English names and ids (matplotlib does not shape Arabic or Persian script);
rows whose label has no Latin form are counted in the panel's note instead of drawn.
Needs matplotlib (``pip install matplotlib==3.10.8``).
"""

from __future__ import annotations

import argparse
import re
import sys
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from khabar.dashboards import PanelRequest, load_objects, panel_requests, rows  # noqa: E402

_NON_LATIN = re.compile(r"[\u0590-\u08ff\ufb1d-\ufefc]")
_STANCE_COLOURS = {"assert": "#54B399", "confirm": "#6092C0", "deny": "#E7664C", None: "#B9A888"}
_PALETTE = ["#54B399", "#6092C0", "#D36086", "#9170B8", "#CA8EAE", "#D6BF57", "#B9A888", "#DA8B45", "#AA6556",
            "#E7664C"]
# (panel id, how to draw it): the panels an analyst looks at first.
MAIN_PANELS = (
    ("khabar-articles-over-time-language", "time"),
    ("khabar-quotes-via", "stacked"),
    ("khabar-entities-top-people", "barh"),
    ("khabar-entities-top-organisations", "barh"),
    ("khabar-entities-top-places", "barh"),
    ("khabar-quotes-by-speaker", "stacked"),
    ("khabar-claims-stance", "stacked"),
    ("khabar-claims-by-speaker", "stacked"),
    ("khabar-stories-size", "stacked"),
    ("khabar-health-offsets", "offsets"),
)


def latin(label: Any) -> str | None:
    """A label matplotlib can draw, or None for text in Arabic script (it would come out unshaped)."""
    if label is None:
        return "(missing)"
    text = str(label)
    return None if _NON_LATIN.search(text) else text


def short_claim(claim_id: str) -> str:
    """``claim:meet:per:a+per:b@loc:c`` -> ``meet: a + b @ c``."""
    m = re.match(r"claim:([^:]+):(.*?)(?:@(?:\w+:)?(.*))?$", claim_id)
    if not m:
        return claim_id
    who = " + ".join(p.split(":", 1)[-1] for p in m.group(2).split("+"))
    return f"{m.group(1)}: {who}" + (f" @ {m.group(3)}" if m.group(3) else "")


def query_panels(es_url: str, prefix: str) -> dict[str, tuple[PanelRequest, list[dict[str, Any]]]]:
    """Run every panel's request on Elasticsearch; vis id -> (request, rows)."""
    from elasticsearch import Elasticsearch

    client = Elasticsearch(es_url)
    try:
        # The pipeline may have written a moment ago: make every write visible to the searches.
        client.indices.refresh(index=f"{prefix}-*")
        out = {}
        for req in panel_requests(load_objects(), prefix=prefix):
            out[req.vis_id] = (req, rows(req, client.search(index=req.index, **req.body).body))
        return out
    finally:
        client.close()


def _labels(req: PanelRequest) -> tuple[list[str], str]:
    return [c.label for c in req.buckets], next(c.label for c in req.metrics)


def _note(ax: Any, text: str) -> None:
    ax.text(0.99, 0.01, text, transform=ax.transAxes, ha="right", va="bottom", fontsize=8, color="#69707D")


def draw_barh(ax: Any, req: PanelRequest, table: Sequence[Mapping[str, Any]]) -> None:
    (key,), metric = _labels(req)
    drawn = [(latin(r[key]), r[metric]) for r in table]
    hidden = sum(1 for label, _ in drawn if label is None)
    drawn = [d for d in drawn if d[0] is not None][::-1]
    ax.barh([d[0] for d in drawn], [d[1] for d in drawn], color="#6092C0")
    ax.set_xlabel(metric)
    if hidden:
        _note(ax, f"{hidden} names without a Latin form not drawn")


def draw_stacked(ax: Any, req: PanelRequest, table: Sequence[Mapping[str, Any]]) -> None:
    (key, split), metric = _labels(req)
    is_claim = "claim" in req.vis_id
    totals: dict[str, float] = defaultdict(float)
    parts: dict[str, dict[Any, float]] = defaultdict(dict)
    hidden = 0
    for r in table:
        label = short_claim(r[key]) if is_claim and r[key] else latin(r[key])
        if label is None:
            hidden += r[metric]
            continue
        totals[label] += r[metric]
        parts[label][r[split]] = parts[label].get(r[split], 0) + r[metric]
    order = sorted(totals, key=lambda k: totals[k])[-15:]
    series = sorted({s for p in parts.values() for s in p}, key=lambda s: (s is None, str(s)))
    left = [0.0] * len(order)
    for i, s in enumerate(series):
        values = [parts[k].get(s, 0) for k in order]
        colour = _STANCE_COLOURS.get(s, _PALETTE[i % len(_PALETTE)]) if split == "Stance" else _PALETTE[i % 10]
        ax.barh(order, values, left=left, label=latin(s) or "?", color=colour)
        left = [a + b for a, b in zip(left, values, strict=False)]
    ax.set_xlabel(metric)
    if series:
        ax.legend(title=split, fontsize=8, title_fontsize=8, loc="best")
    if not order:
        _note(ax, "no data yet (story ids not indexed)" if "stories" in req.vis_id else "no data")
    if hidden:
        _note(ax, f"{int(hidden)} {metric.lower()} by speakers without an English name not drawn")
    ax.tick_params(axis="y", labelsize=8)


def draw_time(ax: Any, req: PanelRequest, table: Sequence[Mapping[str, Any]]) -> None:
    (when, split), metric = _labels(req)
    years = sorted({r[when][:4] for r in table})
    series = sorted({r[split] for r in table}, key=str)
    bottom = [0] * len(years)
    for i, s in enumerate(series):
        values = [sum(r[metric] for r in table if r[when][:4] == y and r[split] == s) for y in years]
        ax.bar(years, values, bottom=bottom, label=str(s), color=_PALETTE[i % 10])
        bottom = [a + b for a, b in zip(bottom, values, strict=False)]
    ax.set_ylabel(metric)
    ax.legend(title=split, fontsize=8, title_fontsize=8)
    _note(ax, "undated articles are placed at their ingest time")


def draw_sources(ax: Any, req: PanelRequest, table: Sequence[Mapping[str, Any]]) -> None:
    parts: dict[str, dict[str, int]] = defaultdict(dict)
    for r in table:
        parts[latin(r["Source"]) or "?"][r["Language"]] = r["Articles"]
    languages = sorted({lang for p in parts.values() for lang in p}, key=str)
    names = sorted(parts, key=lambda k: sum(parts[k].values()))
    left = [0] * len(names)
    for i, lang in enumerate(languages):
        values = [parts[n].get(lang, 0) for n in names]
        ax.barh(names, values, left=left, label=str(lang), color=_PALETTE[i % 10])
        left = [a + b for a, b in zip(left, values, strict=False)]
    ax.set_xlabel("Articles")
    ax.legend(title="Language", fontsize=8, title_fontsize=8)


def draw_offsets(ax: Any, req: PanelRequest, table: Sequence[Mapping[str, Any]]) -> None:
    labels = [f"{r['Topic']}[{r['Partition']}]" for r in table]
    ax.barh(labels, [r["Articles"] for r in table], color="#54B399", label="articles indexed")
    span = [int(r["Last offset"]) - int(r["First offset"]) + 1 for r in table]
    ax.scatter(span, labels, color="#E7664C", zorder=3, label="offsets spanned")
    ax.set_xlabel("Articles")
    ax.legend(fontsize=8)
    ax.tick_params(axis="y", labelsize=8)


DRAW = {"barh": draw_barh, "stacked": draw_stacked, "time": draw_time, "sources": draw_sources,
        "offsets": draw_offsets}


def render(data: Mapping[str, tuple[PanelRequest, list[dict[str, Any]]]], out: Path) -> Path:
    """Draw the main panels into one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(pid, kind) for pid, kind in MAIN_PANELS if pid in data]
    ncols = 2
    nrows = (len(panels) + 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(16, 4.2 * nrows), dpi=100)
    for ax, (pid, kind) in zip(axes.flat, panels, strict=False):
        req, table = data[pid]
        DRAW[kind](ax, req, table)
        ax.set_title(f"{req.dashboard.replace('khabar · ', '')} — {req.title}", fontsize=11, loc="left")
        ax.spines[["top", "right"]].set_visible(False)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle("khabar — Kibana dashboards' data on the sample articles (rendered from Elasticsearch)",
                 fontsize=14, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def index_samples(samples: Path, bootstrap: str, es_url: str) -> str:
    """Submit the sample files through Kafka and the ingest pipeline into fresh indices; their prefix."""
    from khabar import submit
    from khabar.config import load_config
    from khabar.connectors.kafka import ensure_topics, producer
    from khabar.pipelines.ingest import run

    tag = "render-" + uuid.uuid4().hex[:8]
    cfg = load_config({"kafka.bootstrap_servers": bootstrap, "kafka.topic": tag, "kafka.dlq_topic": tag + ".dlq",
                       "kafka.group_id": tag, "elasticsearch.url": es_url, "elasticsearch.index_prefix": tag},
                      environ={})
    ensure_topics(cfg.kafka)
    prod = producer(cfg.kafka)
    try:
        paths = [str(p) for p in sorted(samples.glob("*.txt"))]
        for m, _ in submit.iter_messages(paths):
            key, value = submit.encode(m)
            prod.send(cfg.kafka.topic, key=key, value=value)
        prod.flush()
    finally:
        prod.close(timeout=10)
    result = run(cfg, bounded=True)
    print(f"indexed the samples under {tag}-*: {result.counters}", file=sys.stderr)
    return tag


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--es-url", default="http://127.0.0.1:9200")
    parser.add_argument("--index-prefix", default="khabar")
    parser.add_argument("--index-samples", type=Path, metavar="DIR",
                        help="first submit these .txt articles through Kafka + the ingest pipeline")
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--keep", action="store_true", help="keep the indices made by --index-samples")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboards.png")
    args = parser.parse_args(argv)
    prefix = args.index_prefix
    if args.index_samples:
        prefix = index_samples(args.index_samples, args.bootstrap_servers, args.es_url)
    try:
        data = query_panels(args.es_url, prefix)
        print(f"wrote {render(data, args.out)}")
    finally:
        if args.index_samples and not args.keep:
            from elasticsearch import Elasticsearch

            client = Elasticsearch(args.es_url)
            for kind in ("articles", "entities", "quotes"):
                client.indices.delete(index=f"{prefix}-{kind}", ignore_unavailable=True)
            client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
