"""Turn files, folders, JSON lines and stdin into khabar messages (``khabar submit``).

Reading is separate from sending so it can be tested without Kafka: :func:`iter_messages`
yields ``(message, None)`` or ``(None, error)`` per input item.
"""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

SUFFIXES = (".txt", ".jsonl", ".json", ".ndjson", ".jsonl.gz")


@dataclass
class SubmitError:
    """An input item that could not be turned into a message."""

    where: str
    error: str


@dataclass
class SubmitSummary:
    """Counts of one ``submit`` run."""

    sent: int = 0
    failed: int = 0
    errors: list[SubmitError] = field(default_factory=list)


def _open_text(path: Path) -> TextIO:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in SUFFIXES if name.endswith(s)), None)


def iter_paths(paths: Iterable[str]) -> Iterator[Path | str]:
    """Expand folders (recursively, sorted) into the files khabar can read; ``-`` stays stdin."""
    for raw in paths:
        if raw == "-":
            yield raw
            continue
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and _kind(p))
        else:
            yield path


def message_from_text_file(path: Path, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """One article per ``.txt`` file: the whole text, id from the file name.

    The title stays in the text: finding it (first line, or a repeated line with a site suffix) is the
    enrichment's job, and offsets must refer to the text as the user wrote it.
    """
    text = path.read_text(encoding="utf-8")
    return {**defaults, "id": path.stem, "text": text}


def _from_json_lines(stream: TextIO, where: str, defaults: Mapping[str, Any]) -> Iterator[Any]:
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            yield None, SubmitError(f"{where}:{number}", f"invalid JSON: {exc.msg}")
            continue
        if not isinstance(data, dict):
            yield None, SubmitError(f"{where}:{number}", "not a JSON object")
            continue
        yield {**defaults, **data}, None


def iter_messages(
    paths: Iterable[str], *, defaults: Mapping[str, Any] | None = None, stdin: TextIO | None = None
) -> Iterator[tuple[dict[str, Any] | None, SubmitError | None]]:
    """Messages from files (``.txt``, ``.json``, ``.jsonl``/``.ndjson``, ``.jsonl.gz``), folders and ``-``.

    Args:
        paths: Files, folders, or ``-`` for JSON lines on stdin.
        defaults: Fields added to every message unless it has them (``source``, ``language``).
        stdin: The stream read for ``-``.
    """
    defaults = dict(defaults or {})
    for path in iter_paths(paths):
        if path == "-":
            yield from _from_json_lines(stdin or sys.stdin, "<stdin>", defaults)
            continue
        assert isinstance(path, Path)
        kind = _kind(path)
        try:
            if kind == ".txt":
                yield message_from_text_file(path, defaults), None
            elif kind in (".jsonl", ".ndjson", ".jsonl.gz"):
                with _open_text(path) as stream:
                    yield from _from_json_lines(stream, str(path), defaults)
            elif kind == ".json":
                data = json.loads(path.read_text(encoding="utf-8"))
                items = data if isinstance(data, list) else [data]
                for i, item in enumerate(items):
                    if isinstance(item, dict):
                        yield {**defaults, **item}, None
                    else:
                        yield None, SubmitError(f"{path}[{i}]", "not a JSON object")
            else:
                yield None, SubmitError(str(path), "unsupported file type (use .txt, .json, .jsonl, .jsonl.gz)")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            yield None, SubmitError(str(path), f"{type(exc).__name__}: {exc}")


def encode(message: Mapping[str, Any]) -> tuple[bytes | None, bytes]:
    """Kafka key (the id, so one document always lands in one partition) and value."""
    key = message.get("id")
    return (str(key).encode("utf-8") if key else None,
            json.dumps(message, ensure_ascii=False).encode("utf-8"))


def send(
    messages: Iterable[tuple[dict[str, Any] | None, SubmitError | None]],
    producer: Any,
    topic: str,
    *,
    progress: bool | None = None,
    total: int | None = None,
) -> SubmitSummary:
    """Send messages with a producer; waits for every acknowledgement before returning."""
    from tqdm import tqdm

    summary = SubmitSummary()
    futures = []
    bar = tqdm(total=total, unit="doc", disable=progress is False or (progress is None and (total or 0) <= 5),
               file=sys.stderr, desc=f"submit → {topic}")
    with bar:
        for message, error in messages:
            if error is not None:
                summary.failed += 1
                summary.errors.append(error)
                continue
            assert message is not None
            key, value = encode(message)
            futures.append((message.get("id"), producer.send(topic, key=key, value=value)))
            bar.update(1)
        producer.flush()
    for doc_id, future in futures:
        try:
            future.get(timeout=60)
            summary.sent += 1
        except Exception as exc:
            summary.failed += 1
            summary.errors.append(SubmitError(str(doc_id), f"{type(exc).__name__}: {exc}"))
    return summary
