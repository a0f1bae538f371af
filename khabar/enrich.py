"""Enrichment: from a message (``{"id", "text", ...}``) to the article record of DESIGN.md.

:func:`enrich` composes the text-analysis steps::

    normalize -> language -> structure/boilerplate -> dates -> entities -> quotes -> claims

Every ``start``/``end`` in the record indexes the message's input ``text``. Entities, quotes and
claims come from :mod:`khabar.entities`, :mod:`khabar.quotes` and :mod:`khabar.claims`; while one
of those modules does not exist yet its field is an empty list.

:func:`run_enrich` is the body of ``khabar enrich``: JSON lines, ``.txt`` files, folders of them, or
``-`` for stdin in; one JSON article per line out; a bad line becomes an error record on stderr.
The articles of one run are linked into stories within the run (:mod:`khabar.stories`).

Example:
    >>> rec = enrich({"id": "x", "text": "طهران تنفي وجود خلافات مع موسكو\\n\\nنفى نائب وزير الخارجية."})
    >>> rec["language"], rec["title"]
    ('ar', 'طهران تنفي وجود خلافات مع موسكو')
"""

from __future__ import annotations

import gc
import gzip
import hashlib
import json
import sys
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any, TextIO

from khabar.boilerplate import FurnitureLearner, analyse, from_html
from khabar.claims import extract_claims
from khabar.dates import extract_dates, parse_date_value
from khabar.entities import extract_entities
from khabar.language import detect_language, paragraph_languages
from khabar.normalize import normalize
from khabar.quotes import extract_quotes

__all__ = ["enrich", "enrich_many", "link_records", "message_text", "preload", "run_enrich", "tune_gc"]

# Field names seen in the corpora, in order of preference.
_TEXT_FIELDS = ("text", "content", "body", "article", "story")
_DATE_FIELDS = ("published_at", "published", "date", "pubDate", "date_published", "date_jalali_from_url")
_KNOWN = {"id", "text", "title", "url", "source", "language", "published_at", "html"}


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a message: ``text`` (or a corpus's ``content``/``body``), else its HTML's text."""
    for f in _TEXT_FIELDS:
        v = message.get(f)
        if isinstance(v, str) and v.strip():
            return v
    html = message.get("html")
    if isinstance(html, str) and html.strip():
        return from_html(html)
    return ""


# Enrichment allocates many short-lived objects over a large, long-lived heap (gazetteer automata,
# NER weight tables and row caches): with the default gen-0 threshold (700) the collector runs every
# few hundred tokens. 50,000 keeps young-generation pauses short and cut CPU per document by 10-25%
# (benchmarks/enrich_speed.py). Nothing in enrichment builds reference cycles on purpose.
_GC_THRESHOLD = (50_000, 20, 100)


def tune_gc() -> None:
    """Set the garbage collector's thresholds for a long-running enrichment worker (process-wide)."""
    if gc.get_threshold()[0] < _GC_THRESHOLD[0]:
        gc.set_threshold(*_GC_THRESHOLD)


# One text per language that takes the expensive paths once (NER, a title before a misspelt surname,
# a quote, a date), so that models, tables and indexes load before the first real document.
_WARM_UP = (
    "قال الرئيس لافاروف في طهران يوم 5 مايو 2024: «الاجتماع عقد في موسكو مع فلاديمير بوتين».",
    "وزیر امور خارجه ایران روز دوشنبه ۱۵ اردیبهشت ۱۴۰۳ در تهران گفت: «دیدار با ولادیمیر پوتین در مسکو بود».",
)


def preload() -> None:
    """Load every model, table and index enrichment uses, for both languages, once per process.

    Workers call it in ``setup()``: loading takes about a second, which must not count against the
    first documents' time budget.
    """
    for i, text in enumerate(_WARM_UP):  # tags each text with its language's NER model
        enrich({"id": f"warm-up-{i}", "text": text})
    try:
        from khabar import ner
    except ImportError:  # entity linking works without the statistical tagger
        return
    for language in ner.LANGUAGES:  # the typo guard's word table is read only for some documents
        ner.word_rank("", language)


def _message_date(message: Mapping[str, Any]) -> tuple[date | None, str | None]:
    for f in _DATE_FIELDS:
        v = message.get(f)
        if v:
            d = parse_date_value(v)
            if d is not None:
                return d, f
    return None, None


def _stable_id(message: Mapping[str, Any], text: str) -> str:
    h = hashlib.sha256()
    for part in (str(message.get("source") or ""), str(message.get("url") or ""), text):
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:20]


def enrich(message: Mapping[str, Any], *, learner: FurnitureLearner | None = None) -> dict:
    """Enrich one message into an article record.

    Args:
        message: a Kafka message object (at least ``text`` or ``html``; see schemas/).
        learner: per-source furniture learner kept by the caller (one per worker).

    Returns:
        The article record (DESIGN.md, "khabar enrich output"); offsets index ``message["text"]``.
    """
    text = message_text(message)
    norm = normalize(text)
    given_lang = message.get("language")
    lang, conf = detect_language(norm.display)
    source = message.get("source")
    given_title = message.get("title") if isinstance(message.get("title"), str) else None
    st = analyse(text, source=source, title=given_title or None, learner=learner, norm=norm)

    msg_date, date_field = _message_date(message)
    dates = extract_dates(text, language=lang, context_date=msg_date, norm=norm)
    published_at, published_orig = dates["published_at"], dates["published_at_original"]
    if msg_date is not None:
        # The message's own date is metadata from the publisher: it wins over the text.
        published_at = msg_date.isoformat()
        raw = message.get(date_field)
        cal = "jalali" if date_field == "date_jalali_from_url" else "gregorian"
        published_orig = {"calendar": cal, "text": str(raw), "field": date_field}

    exclude = [(r["start"], r["end"]) for r in st.removed]
    entities: list[dict] = []
    quotes: list[dict] = []
    claims: list[dict] = []
    if lang in ("ar", "fa"):
        entities = list(extract_entities(text, lang, exclude=exclude, normalized=norm))
        quotes = list(extract_quotes(text, lang, entities, exclude=exclude))
        claims = list(extract_claims(text, lang, entities, quotes))

    # A message that went through the pipeline's parser already carries its unknown fields in "extra".
    extra = dict(message["extra"]) if isinstance(message.get("extra"), Mapping) else {}
    extra.update((k, v) for k, v in message.items()
                 if k not in _KNOWN and k not in _TEXT_FIELDS and k != "extra")
    record: dict[str, Any] = {
        "id": str(message["id"]) if message.get("id") not in (None, "") else _stable_id(message, text),
        "language": lang,
        "language_confidence": conf,
        "declared_language": given_lang,
        "title": st.title,
        "title_span": list(st.title_span) if st.title_span else None,
        "byline": st.byline,
        "body": st.body,
        # Paragraph spans of the body in the input text: stories.signature pairs paragraphs by them.
        "body_spans": [[s, e] for s, e in st.body_spans],
        "published_at": published_at,
        "published_at_original": published_orig,
        "dates": dates["dates"],
        "source": source,
        "url": message.get("url"),
        "boilerplate": st.removed,
        # Mixed documents lower the document's confidence; clear ones skip the per-paragraph pass.
        "paragraph_languages": _mixed_paragraphs(st.body_spans, text, lang) if conf < 0.95 else [],
        "entities": entities,
        "quotes": quotes,
        "claims": claims,
        "story_id": None,
        "duplicate_of": None,
        "reuses": [],
    }
    if extra:
        record["extra"] = extra
    return record


def _mixed_paragraphs(spans: Sequence[tuple[int, int]], text: str, lang: str) -> list[dict]:
    """Per-paragraph languages, only when some paragraph differs from the document's language."""
    if len(spans) < 2:
        return []
    out = []
    for s, e in spans:
        for p in paragraph_languages(text[s:e]):
            out.append({**p, "start": p["start"] + s, "end": p["end"] + s})
    if all(p["language"] == lang for p in out):
        return []
    return out


def enrich_many(
    messages: Iterable[Mapping[str, Any]], *, learner: FurnitureLearner | None = None,
    link_stories: bool = False,
) -> Iterator[dict]:
    """Enrich a stream of messages with one furniture learner shared across them.

    With ``link_stories`` the records are held until the end and linked within the set
    (:func:`khabar.stories.link_all`: ``story_id``, ``duplicate_of``, ``reuses``).
    """
    learner = learner if learner is not None else FurnitureLearner()
    records = (enrich(m, learner=learner) for m in messages)
    if not link_stories:
        yield from records
        return
    held = list(records)
    yield from link_records(held)


def link_records(records: list[dict]) -> list[dict]:
    """Fill ``story_id``, ``duplicate_of`` and ``reuses`` of enriched records within their set (in place)."""
    from khabar.stories import link_all

    for rec, links in zip(records, link_all(records), strict=True):
        rec["story_id"], rec["duplicate_of"], rec["reuses"] = (
            links["story_id"], links["duplicate_of"], links["reuses"])
    return records


def _open_text(path: Path) -> TextIO:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _txt_message(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    return {"id": path.stem, "text": text}


def _iter_inputs(paths: Sequence[str]) -> Iterator[tuple[str, int, str | dict]]:
    """Yield (file, line number, raw line or ready message)."""
    for p in paths:
        if p == "-":
            for i, line in enumerate(sys.stdin, 1):
                yield "-", i, line
            continue
        path = Path(p)
        files = sorted(x for x in path.rglob("*") if x.is_file()) if path.is_dir() else [path]
        for f in files:
            name = f.name.lower()
            if name.endswith(".txt"):
                yield str(f), 0, _txt_message(f)
            elif name.endswith((".jsonl", ".jsonl.gz", ".json", ".ndjson")):
                with _open_text(f) as fh:
                    for i, line in enumerate(fh, 1):
                        yield str(f), i, line
            elif not path.is_dir():
                yield str(f), 0, _txt_message(f)


def run_enrich(paths: Sequence[str], out: TextIO, *, pretty: bool = False, err: TextIO = sys.stderr,
               link_stories: bool = True) -> int:
    """Enrich files/folders/stdin and write one JSON article per line to ``out``.

    With ``link_stories`` the articles are written once all inputs are read, with ``story_id``,
    ``duplicate_of`` and ``reuses`` decided within the set (:func:`khabar.stories.link_all`);
    without it each article is written as soon as it is enriched, in constant memory. Errors go
    out as they occur.

    Args:
        paths: JSON lines files (optionally .gz), .txt files, folders of them, or ``"-"`` for stdin.
        out: where articles go.
        pretty: indent the JSON for humans.
        err: where error records go (one JSON object per bad input, with file and line).

    Returns:
        0 if every input was enriched, 1 otherwise.
    """
    learner = FurnitureLearner()
    failed = 0
    # Stories, copies and reuse are decided within the whole set, so records are held until the end.
    records: list[dict] = []
    for fname, lineno, item in _iter_inputs(paths):
        try:
            if isinstance(item, str):
                if not item.strip():
                    continue
                msg = json.loads(item)
                if not isinstance(msg, dict):
                    raise ValueError("a message must be a JSON object")
            else:
                msg = item
            if fname.endswith(".txt") and isinstance(msg, dict) and "id" not in msg:
                msg["id"] = Path(fname).stem
            rec = enrich(msg, learner=learner)
        except Exception as exc:  # one bad input must not stop the run; it becomes an error record
            failed += 1
            tb = traceback.extract_tb(exc.__traceback__)
            where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno} in {tb[-1].name}" if tb else None
            err.write(json.dumps({"error": type(exc).__name__, "reason": str(exc)[:500],
                                  "file": fname, "line": lineno, "where": where}, ensure_ascii=False) + "\n")
            continue
        if link_stories:
            records.append(rec)
        else:
            out.write(json.dumps(rec, ensure_ascii=False, indent=2 if pretty else None) + "\n")
    for rec in link_records(records):
        out.write(json.dumps(rec, ensure_ascii=False, indent=2 if pretty else None) + "\n")
    return 1 if failed else 0
