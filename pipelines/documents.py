"""Pure functions at the pipeline's seams: parse a Kafka record, build index documents, dead letters.

Nothing here imports Beam or opens a connection, so each step is tested on plain data.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from jsonschema import Draft202012Validator

from khabar.config import PipelineConfig
from khabar.connectors.elasticsearch import IndexRequest
from khabar.schemas import load_schema

MESSAGE_FIELDS = frozenset({"id", "text", "title", "url", "source", "language", "published_at", "html"})
_VALIDATOR = Draft202012Validator(load_schema("message"))
MAX_DEAD_LETTER_PAYLOAD = 12 * 1024 * 1024


class Rejected(Exception):
    """A record that cannot go on; ``stage`` says where it stopped."""

    def __init__(self, stage: str, error: str, error_type: str = "invalid") -> None:
        super().__init__(error)
        self.stage = stage
        self.error = error
        self.error_type = error_type


def origin_of(record: Any) -> dict[str, Any]:
    """Where a Kafka record came from, for dead letters and for the indexed article."""
    key = record.key.decode("utf-8", "replace") if record.key else None
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset, "key": key}


def _depth_ok(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return True


def parse_message(value: bytes | None, key: bytes | None, cfg: PipelineConfig) -> dict[str, Any]:
    """Decode, parse and validate one Kafka message into a khabar message dict.

    Unknown top-level fields are kept under ``extra``. The id is the message's ``id``, else the
    record key, else a hash of the text, so a replay of the same input keeps the same id.

    Raises:
        Rejected: With stage ``decode``, ``parse`` or ``validate`` and the reason.
    """
    if value is None or len(value) == 0:
        raise Rejected("decode", "empty record value", "empty")
    if len(value) > cfg.max_payload_bytes:
        raise Rejected("validate", f"payload of {len(value)} bytes exceeds the limit of {cfg.max_payload_bytes}",
                       "too_large")
    try:
        raw = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected("decode", f"not UTF-8: {exc.reason} at byte {exc.start}", "encoding") from exc
    raw = raw.removeprefix("\ufeff")
    try:
        data = json.loads(raw)
    except RecursionError as exc:
        raise Rejected("parse", "JSON nested too deeply", "too_deep") from exc
    except json.JSONDecodeError as exc:
        raise Rejected("parse", f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                       "json") from exc
    if not isinstance(data, dict):
        raise Rejected("validate", f"message must be a JSON object, got {type(data).__name__}", "schema")
    if not _depth_ok(data, cfg.max_json_depth):
        raise Rejected("parse", f"JSON nested deeper than {cfg.max_json_depth} levels", "too_deep")
    error = next(iter(sorted(_VALIDATOR.iter_errors(data), key=lambda e: list(e.path))), None)
    if error is not None:
        where = ".".join(str(p) for p in error.path) or "(message)"
        raise Rejected("validate", f"{where}: {_short(error.message)}", "schema")
    if len(data["text"]) > cfg.max_text_chars:
        raise Rejected("validate", f"text has {len(data['text'])} characters, over the limit of "
                       f"{cfg.max_text_chars}", "too_large")
    message = {k: v for k, v in data.items() if k in MESSAGE_FIELDS}
    extra = {k: v for k, v in data.items() if k not in MESSAGE_FIELDS}
    if isinstance(data.get("extra"), dict):  # a message that already carries extra keeps it
        extra = {**data["extra"], **{k: v for k, v in extra.items() if k != "extra"}}
    if extra:
        message["extra"] = extra
    if not message.get("id"):
        message["id"] = key.decode("utf-8", "replace") if key else text_id(data["text"])
    return message


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def text_id(text: str) -> str:
    """A deterministic id for a message that has none."""
    return "sha1-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:20]


def now_iso() -> str:
    """The current UTC time in ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def article_to_requests(
    article: Mapping[str, Any],
    prefix: str = "khabar",
    *,
    origin: Mapping[str, Any] | None = None,
    ingested_at: str | None = None,
) -> list[IndexRequest]:
    """Index requests for an enriched article: the article, one per entity, one per quote.

    Ids are deterministic (article id; ``article:entity``; ``article:quote``), so writing the same
    article twice replaces the earlier documents.
    """
    ingested_at = ingested_at or now_iso()
    article_id = str(article["id"])
    published = article.get("published_at")
    timestamp = published or ingested_at
    common = {
        "language": article.get("language"),
        "source": article.get("source"),
        "published_at": published,
        "timestamp": timestamp,
        "title": article.get("title"),
    }
    entities = list(article.get("entities") or [])
    quotes = list(article.get("quotes") or [])
    claims = list(article.get("claims") or [])
    signature = article.get("story_signature") or {}
    article_doc = {
        "id": article_id,
        "language": article.get("language"),
        "language_confidence": article.get("language_confidence"),
        "title": article.get("title"),
        "body": article.get("body") or "",
        "published_at": published,
        "published_at_original": _original(article.get("published_at_original")),
        "timestamp": timestamp,
        "ingested_at": ingested_at,
        "source": article.get("source"),
        "url": article.get("url"),
        "entity_ids": [e["id"] for e in entities],
        "entities": [{"id": e["id"], "type": e.get("type"), "name": _entity_name(e),
                      "mention_count": len(e.get("mentions") or [])} for e in entities],
        "quote_count": len(quotes),
        "claim_ids": [c["id"] for c in claims if c.get("id")],
        "claims": [{k: c.get(k) for k in ("id", "summary", "stance", "by", "predicate")} for c in claims],
        "story_id": article.get("story_id"),
        "duplicate_of": article.get("duplicate_of"),
        "reuses": list(article.get("reuses") or []),
        # Set by pipelines.stories.LinkStories: later articles find this one by these terms.
        "story_key": signature.get("story_key"),
        "story_bands": list(signature.get("bands") or []),
        "story_signature": article.get("story_signature"),
        "boilerplate_count": len(article.get("boilerplate") or []),
        "extra": article.get("extra") or {},
    }
    if origin:
        article_doc["kafka"] = {k: origin[k] for k in ("topic", "partition", "offset") if k in origin}
    entity_ids = tuple(f"{article_id}:{e['id']}" for e in entities)
    quote_ids = tuple(f"{article_id}:{q['id']}" for q in quotes)
    replaces = ((f"{prefix}-entities", "article_id", entity_ids), (f"{prefix}-quotes", "article_id", quote_ids))
    requests = [IndexRequest(f"{prefix}-articles", article_id, article_doc, origin, article_id, replaces)]
    for entity in entities:
        names = entity.get("names") or {}
        mentions = [{"start": m["start"], "end": m["end"], "text": m["text"]} for m in entity.get("mentions") or []]
        doc = {
            "article_id": article_id,
            "entity_id": entity["id"],
            "type": entity.get("type"),
            "name": _entity_name(entity),
            "name_en": names.get("en"),
            "name_ar": names.get("ar"),
            "name_fa": names.get("fa"),
            "mention_count": len(mentions),
            "mentions": mentions,
            **common,
        }
        requests.append(IndexRequest(f"{prefix}-entities", f"{article_id}:{entity['id']}", doc, origin, article_id))
    for quote in quotes:
        speaker = quote.get("speaker") or {}
        via = quote.get("via") or {}
        doc = {
            "article_id": article_id,
            "quote_id": quote["id"],
            "kind": quote.get("kind"),
            "text": quote.get("text"),
            "start": quote.get("start"),
            "end": quote.get("end"),
            "cue": quote.get("cue"),
            "speaker_text": speaker.get("text"),
            "speaker_entity_id": speaker.get("entity_id"),
            "speaker_name": speaker.get("name") or speaker.get("text"),
            "speaker_affiliation": speaker.get("affiliation"),
            "via_text": via.get("text"),
            "via_entity_id": via.get("entity_id"),
            "via_name": via.get("name") or via.get("text"),
            "stance": quote.get("stance"),
            "claim_id": quote.get("claim_id"),
            **common,
        }
        requests.append(IndexRequest(f"{prefix}-quotes", f"{article_id}:{quote['id']}", doc, origin, article_id))
    return requests


def _entity_name(entity: Mapping[str, Any]) -> str | None:
    names = entity.get("names") or {}
    return names.get("en") or entity.get("name") or names.get("ar") or names.get("fa")


def _original(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, Mapping):
        return None
    return {"calendar": value.get("calendar"), "text": value.get("text")}


def dead_letter(
    stage: str,
    error: str,
    *,
    error_type: str = "error",
    payload: bytes | None = None,
    origin: Mapping[str, Any] | None = None,
    document_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A dead-letter record: the stage, the reason, the original payload (text or base64) and origin."""
    record: dict[str, Any] = {
        "stage": stage,
        "error": error,
        "error_type": error_type,
        "document_id": document_id,
        "source": dict(origin) if origin else None,
        "failed_at": now_iso(),
        "pipeline": "ingest",
        "payload": None,
        "payload_base64": None,
        "payload_truncated": False,
    }
    if payload is not None:
        truncated = len(payload) > MAX_DEAD_LETTER_PAYLOAD
        body = payload[:MAX_DEAD_LETTER_PAYLOAD]
        try:
            record["payload"] = body.decode("utf-8")
        except UnicodeDecodeError:
            record["payload_base64"] = base64.b64encode(body).decode("ascii")
        record["payload_truncated"] = truncated
    if extra:
        record.update(extra)
    return record


def index_dead_letter(dead: Mapping[str, Any]) -> dict[str, Any]:
    """Turn the sink's rejected-item record into a dead letter carrying the document as payload."""
    document = dead.get("document")
    payload = json.dumps(document, ensure_ascii=False).encode("utf-8") if document is not None else None
    return dead_letter(
        "index",
        str(dead.get("error")),
        error_type=str(dead.get("error_type", "rejected")),
        payload=payload,
        origin=dead.get("origin"),
        document_id=dead.get("document_id"),
        extra={"index": dead.get("index")},
    )


def encode_dead_letter(record: Mapping[str, Any]) -> tuple[bytes | None, bytes]:
    """Key and value bytes of a dead letter for the DLQ topic."""
    key = record.get("document_id")
    return (str(key).encode("utf-8") if key else None,
            json.dumps(record, ensure_ascii=False, default=str).encode("utf-8"))
