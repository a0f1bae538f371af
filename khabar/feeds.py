"""Poll RSS/Atom feeds and send their items to the khabar Kafka topic (``khabar feeds``).

A feeds file (TOML or YAML) lists the feeds; each item becomes one khabar message with a
deterministic id (``<source>:<sha1 of the guid, else of the canonical link>``), so a re-send
overwrites downstream instead of duplicating. What was sent, and each feed's ``ETag`` and
``Last-Modified``, is kept in a small JSON state file that is written only after Kafka acknowledged
the messages: a crash re-sends rather than loses.

Example feeds file (``deploy/feeds.example.toml``)::

    interval = 900          # seconds between polls (--interval overrides)
    timeout = 30            # seconds per HTTP request

    [[feeds]]
    url = "https://www.example.org/persian/rss.xml"
    source = "example-persian"
    language = "fa"

    [[feeds]]
    url = "archive/arabic.atom"     # a local file, relative to this file
    source = "archive-ar"

Usage::

    khabar feeds deploy/feeds.example.toml --once        # poll once, print a summary per feed
    khabar feeds feeds.yaml --interval 300                # poll every 5 minutes until Ctrl-C

Everything but :func:`main`, :func:`fetch` and :meth:`FeedState.save` is pure: config parsing,
item -> message, HTML stripping and the state's bookkeeping are tested on plain data.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import html
import json
import logging
import os
import re
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import tomllib

log = logging.getLogger("khabar.feeds")

USER_AGENT = "khabar-feeds/0.1 (+https://github.com/khabar; feedparser)"
ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
MAX_FEED_BYTES = 32 * 1024 * 1024
STATE_VERSION = 1
# Sent ids remembered per feed; the oldest that left the feed are forgotten first. Feeds hold tens to
# hundreds of items, so this never forgets an item still in the feed (which would be sent again).
MAX_SEEN_PER_FEED = 5000
MAX_PUBLISHED_CHARS = 64  # schemas/message.schema.json: published_at maxLength

_FEED_KEYS = frozenset({"url", "source", "language", "enabled", "timeout"})
_TOP_KEYS = frozenset({"feeds", "interval", "timeout"})
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")
_TRACKING_PARAM = re.compile(r"^(?:utm_[a-z]+|fbclid|gclid|mc_cid|mc_eid|yclid|at_medium|at_campaign)$", re.I)
_INLINE_SPACE = re.compile(r"[ \t\r\f\v\xa0]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")


class FeedConfigError(ValueError):
    """The feeds file is missing, unreadable, or has an unknown key or a bad value (named)."""


class FeedStateError(RuntimeError):
    """The state file cannot be read, or another poller holds it."""


class FeedError(Exception):
    """One feed could not be fetched or parsed; the other feeds go on."""


class ItemError(ValueError):
    """One feed item cannot become a message (no title, summary or content)."""


# --- configuration ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class FeedSpec:
    """One feed to poll.

    Attributes:
        url: ``http(s)://`` or ``file://`` URL (relative paths in the feeds file become ``file://``).
        source: Source name put on every message and into its id.
        language: Language of the items (``fa``, ``ar``); ``None`` lets the feed or enrichment decide.
        enabled: ``False`` skips the feed without removing it from the file.
        timeout: Seconds per request for this feed (``None``: the file's ``timeout``).
    """

    url: str
    source: str
    language: str | None = None
    enabled: bool = True
    timeout: float | None = None

    def __post_init__(self) -> None:
        scheme = urllib.parse.urlsplit(self.url).scheme.lower()
        if scheme not in ("http", "https", "file"):
            raise FeedConfigError(f"feed url {self.url!r}: use http://, https://, file:// or a path")
        if not self.source.strip():
            raise FeedConfigError(f"feed {self.url}: source must not be empty")
        if len(self.source) > 200:
            raise FeedConfigError(f"feed {self.url}: source is longer than 200 characters")
        if self.language is not None and not _LANGUAGE.match(self.language):
            raise FeedConfigError(f"feed {self.url}: language {self.language!r} is not a language code")
        if self.timeout is not None and self.timeout <= 0:
            raise FeedConfigError(f"feed {self.url}: timeout must be positive")

    @property
    def is_file(self) -> bool:
        """Whether the feed is a local file."""
        return self.url.lower().startswith("file:")


@dataclass(frozen=True)
class FeedsConfig:
    """The feeds file: which feeds, how often, how patiently."""

    feeds: tuple[FeedSpec, ...]
    interval: float = 900.0
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise FeedConfigError("interval must be positive")
        if self.timeout <= 0:
            raise FeedConfigError("timeout must be positive")
        seen: set[str] = set()
        for spec in self.feeds:
            if spec.url in seen:
                raise FeedConfigError(f"feed {spec.url} is listed twice")
            seen.add(spec.url)


def _resolve_location(raw: str, base_dir: Path) -> str:
    """An http(s)/file URL as given, or a path (relative to the feeds file) as a ``file://`` URL."""
    scheme = urllib.parse.urlsplit(raw).scheme.lower()
    if scheme in ("http", "https", "file") or (len(scheme) > 1 and "://" in raw):
        return raw
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    return path.resolve().as_uri()


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FeedConfigError(f"{where} must be a number, got {value!r}")
    return float(value)


def parse_feeds_config(data: Any, *, base_dir: str | os.PathLike[str] = ".", origin: str = "feeds") -> FeedsConfig:
    """Validate the parsed feeds file into a :class:`FeedsConfig`.

    Args:
        data: The parsed TOML/YAML document: ``{"feeds": [{"url", "source", "language"}, ...], ...}``.
        base_dir: Directory relative feed paths are resolved against.
        origin: Name used in error messages (the file name).

    Raises:
        FeedConfigError: An unknown key, a missing key or a bad value, naming it.
    """
    if not isinstance(data, Mapping):
        raise FeedConfigError(f"{origin}: expected a table/mapping with a 'feeds' list")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise FeedConfigError(f"{origin}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_TOP_KEYS))})")
    raw_feeds = data.get("feeds")
    if not isinstance(raw_feeds, list) or not raw_feeds:
        raise FeedConfigError(f"{origin}: 'feeds' must be a non-empty list of feeds")
    top: dict[str, float] = {k: _number(data[k], f"{origin}: {k}") for k in ("interval", "timeout") if k in data}
    specs = []
    for i, item in enumerate(raw_feeds):
        where = f"{origin}: feeds[{i}]"
        if not isinstance(item, Mapping):
            raise FeedConfigError(f"{where} must be a table/mapping")
        unknown = sorted(set(item) - _FEED_KEYS)
        if unknown:
            raise FeedConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_FEED_KEYS))})")
        for key in ("url", "source"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise FeedConfigError(f"{where}: '{key}' is required and must be a non-empty string")
        language = item.get("language")
        if language is not None and not isinstance(language, str):
            raise FeedConfigError(f"{where}: language must be a string")
        enabled = item.get("enabled", True)
        if not isinstance(enabled, bool):
            raise FeedConfigError(f"{where}: enabled must be true or false")
        timeout = _number(item["timeout"], f"{where}: timeout") if "timeout" in item else None
        try:
            specs.append(FeedSpec(url=_resolve_location(item["url"].strip(), Path(base_dir)),
                                  source=item["source"].strip(), language=language or None,
                                  enabled=enabled, timeout=timeout))
        except FeedConfigError as exc:
            raise FeedConfigError(f"{where}: {exc}") from None
    try:
        return FeedsConfig(feeds=tuple(specs), **top)
    except FeedConfigError as exc:
        raise FeedConfigError(f"{origin}: {exc}") from None


def load_feeds_config(path: str | os.PathLike[str]) -> FeedsConfig:
    """Read a ``.toml`` or ``.yaml``/``.yml`` feeds file; relative feed paths are relative to it.

    Raises:
        FeedConfigError: The file cannot be read or parsed, or is invalid.
    """
    path = Path(path)
    try:
        raw = path.read_text("utf-8")
    except OSError as exc:
        raise FeedConfigError(f"cannot read feeds file {path}: {exc.strerror}") from exc
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = tomllib.loads(raw)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(raw)
        else:
            raise FeedConfigError(f"{path}: use a .toml, .yaml or .yml feeds file")
    except tomllib.TOMLDecodeError as exc:
        raise FeedConfigError(f"{path}: {exc}") from exc
    except Exception as exc:
        if isinstance(exc, FeedConfigError):
            raise
        raise FeedConfigError(f"{path}: {exc}") from exc  # yaml.YAMLError
    return parse_feeds_config(data, base_dir=path.resolve().parent, origin=str(path))


# --- HTML to text ------------------------------------------------------------------------------------

_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "head", "svg", "iframe", "object"})
_PARAGRAPH_TAGS = frozenset({
    "p", "div", "section", "article", "header", "footer", "aside", "main", "blockquote", "figure",
    "figcaption", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "table", "pre", "hr", "address",
})
_LINE_TAGS = frozenset({"br", "li", "tr", "dt", "dd"})
_CELL_TAGS = frozenset({"td", "th"})


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._boundary(tag, opening=True)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/>, <hr/>, <img/>: a break but no nesting
        if tag not in _SKIP_TAGS:
            self._boundary(tag, opening=False)

    def handle_endtag(self, tag: str) -> None:
        self._boundary(tag, opening=False)

    def _boundary(self, tag: str, *, opening: bool) -> None:
        if tag in _SKIP_TAGS:
            self.skip = self.skip + 1 if opening else max(0, self.skip - 1)
        elif tag in _PARAGRAPH_TAGS:
            self.parts.append("\n\n")
        elif tag in _LINE_TAGS and (opening or tag == "br"):  # <li>a</li><li>b</li>: one break each
            self.parts.append("\n")
        elif tag in _CELL_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def tidy_text(text: str) -> str:
    """Collapse runs of spaces within lines and of blank lines; keep ZWNJ (Persian needs it)."""
    lines = (_INLINE_SPACE.sub(" ", line).strip() for line in text.split("\n"))
    return _MANY_NEWLINES.sub("\n\n", "\n".join(lines)).strip()


def html_to_text(markup: str) -> str:
    """Light HTML-to-text for summaries: tags dropped, blocks become paragraphs, entities decoded.

    Plain text (no tags) comes back with its entities decoded and its whitespace tidied.
    """
    if "<" not in markup:
        return tidy_text(html.unescape(markup))
    collector = _TextCollector()
    collector.feed(markup)
    collector.close()
    return tidy_text("".join(collector.parts))


def full_html_to_text(markup: str) -> str:
    """Main text of full HTML content (``content:encoded``, Atom ``content``) via trafilatura.

    trafilatura drops navigation, share buttons and the like; when it finds nothing (very short or
    unusual markup) the light converter is used, so no item loses its text.
    """
    import trafilatura

    extracted = None
    with contextlib.suppress(Exception):  # trafilatura raises on some odd markup; the fallback covers it
        extracted = trafilatura.extract(markup, include_comments=False, include_tables=True,
                                        favor_recall=True, deduplicate=False, with_metadata=False)
    if not extracted or not extracted.strip():
        return html_to_text(markup)
    # trafilatura separates paragraphs by one newline; khabar texts separate them by a blank line.
    return "\n\n".join(tidy_text(line) for line in extracted.splitlines() if line.strip())


# --- items to messages ----------------------------------------------------------------------------------

def canonical_url(url: str) -> str:
    """A link in canonical form: lower-case scheme and host, no default port, fragment or tracking parameters."""
    parts = urllib.parse.urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port if parts.port and (scheme, parts.port) not in (("http", 80), ("https", 443)) else None
    netloc = host + (f":{port}" if port else "")
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    query = urllib.parse.urlencode(
        [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING_PARAM.match(k)]
    )
    return urllib.parse.urlunsplit((scheme, netloc, parts.path or "/", query, ""))


def item_key(entry: Mapping[str, Any]) -> str:
    """What identifies an item: its guid/Atom id, else its canonical link, else its title and date.

    Raises:
        ItemError: The item has none of these.
    """
    guid = entry.get("id")
    if isinstance(guid, str) and guid.strip():
        return "guid:" + guid.strip()
    link = entry.get("link")
    if isinstance(link, str) and link.strip():
        return "link:" + canonical_url(link)
    title = entry.get("title") or ""
    date = entry.get("published") or entry.get("updated") or ""
    if isinstance(title, str) and title.strip():
        return f"title:{title.strip()}\x00{date}"
    raise ItemError("item has no guid, link or title")


def message_id(source: str, key: str) -> str:
    """The deterministic message id of an item: ``<source>:<sha1 of its key>``."""
    return f"{source}:{hashlib.sha1(key.encode('utf-8')).hexdigest()}"


def _iso(parsed: Any) -> str | None:
    """feedparser's ``*_parsed`` (a UTC ``struct_time``) as ISO 8601."""
    try:
        return datetime(*parsed[:6], tzinfo=timezone.utc).isoformat()
    except (TypeError, ValueError):
        return None


def _detail_is_html(detail: Any) -> bool:
    kind = (detail or {}).get("type") or "text/html"
    return "html" in kind


def _content_text(entry: Mapping[str, Any]) -> str:
    best = ""
    for content in entry.get("content") or []:
        value = content.get("value") or ""
        if not value.strip():
            continue
        text = full_html_to_text(value) if _detail_is_html(content) else tidy_text(value)
        if len(text) > len(best):
            best = text
    return best


def _language_code(value: Any) -> str | None:
    if isinstance(value, str) and _LANGUAGE.match(value.strip()):
        return value.strip().replace("_", "-").split("-")[0].lower()
    return None


def entry_to_message(entry: Mapping[str, Any], feed: FeedSpec,
                     feed_meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Turn one feedparser entry into a khabar message.

    The text is the full content (trafilatura) when the item has it and it is at least as long as
    the summary, else the summary (light HTML stripping), else the title (headline-only feeds).

    Args:
        entry: A feedparser entry (or a plain dict with the same keys).
        feed: The feed it came from: source and language.
        feed_meta: feedparser's ``feed`` dict (channel language, title).

    Returns:
        ``{"id", "text", "title", "url", "published_at", "source", "language", "guid", "feed", ...}``;
        keys outside the message schema end up under ``extra`` in the pipeline.

    Raises:
        ItemError: The item has no title, summary or content.
    """
    feed_meta = feed_meta or {}
    key = item_key(entry)
    raw_title = entry.get("title") or ""
    title = " ".join(html_to_text(raw_title).split()) if _detail_is_html(entry.get("title_detail")) \
        else " ".join(raw_title.split())
    summary = entry.get("summary") or ""
    summary_text = (html_to_text(summary) if _detail_is_html(entry.get("summary_detail")) else tidy_text(summary)) \
        if summary.strip() else ""
    content_text = _content_text(entry)
    text = content_text if content_text and len(content_text) >= len(summary_text) else summary_text
    text_from = "content" if text and text is content_text else "summary"
    if not text:
        if not title:
            raise ItemError(f"item {key[:80]!r} has no title, summary or content")
        text, text_from = title, "title"
    message: dict[str, Any] = {"id": message_id(feed.source, key), "text": text, "source": feed.source}
    if title:
        message["title"] = title
    link = entry.get("link")
    if isinstance(link, str) and link.strip():
        message["url"] = link.strip()
    published = _iso(entry.get("published_parsed")) or _iso(entry.get("updated_parsed"))
    if published is None:
        raw = entry.get("published") or entry.get("updated")
        # An unparsed date string (a Jalali or Hijri one) is left for the enrichment's date parser.
        if isinstance(raw, str) and raw.strip():
            published = raw.strip()[:MAX_PUBLISHED_CHARS]
    if published:
        message["published_at"] = published
    # Atom's xml:lang reaches feedparser's *_detail dicts; RSS has only the channel's <language>.
    details = [entry.get("title_detail"), entry.get("summary_detail"), *(entry.get("content") or [])]
    entry_language = next((code for d in details if isinstance(d, Mapping)
                           for code in [_language_code(d.get("language"))] if code), None)
    language = feed.language or entry_language or _language_code(feed_meta.get("language"))
    if language:
        message["language"] = language
    guid = entry.get("id")
    if isinstance(guid, str) and guid.strip():
        message["guid"] = guid.strip()
    message["feed"] = feed.url
    message["text_from"] = text_from
    author = entry.get("author")
    if isinstance(author, str) and author.strip():
        message["author"] = author.strip()
    tags = [t.get("term") for t in entry.get("tags") or [] if isinstance(t, Mapping) and t.get("term")]
    if tags:
        message["categories"] = tags
    return message


# --- state ------------------------------------------------------------------------------------------------

def default_state_path(topic: str, environ: Mapping[str, str] | None = None) -> Path:
    """``$KHABAR_HOME/feeds-state/<topic>.json`` (``~/.cache/khabar`` by default): one state per topic."""
    environ = os.environ if environ is None else environ
    home = Path(environ.get("KHABAR_HOME") or Path.home() / ".cache" / "khabar").expanduser()
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", topic) or "topic"
    return home / "feeds-state" / f"{safe}.json"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class FeedState:
    """What was sent from each feed, and the validators (ETag, Last-Modified) of its last good fetch.

    Layout: ``{"version": 1, "feeds": {url: {"etag", "modified", "seen": {id: first_sent},
    "last_poll", "last_ok", "last_error"}}}``.
    """

    path: Path | None = None
    feeds: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None) -> FeedState:
        """Read the state file; a missing file is an empty state.

        Raises:
            FeedStateError: The file exists but is not a khabar feeds state.
        """
        if path is None:
            return cls()
        path = Path(path)
        try:
            data = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return cls(path)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FeedStateError(f"cannot read feeds state {path}: {exc}; move it away to start over "
                                 "(everything still in the feeds is then sent again, under the same ids)") from exc
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION \
                or not isinstance(data.get("feeds"), dict):
            raise FeedStateError(f"{path} is not a khabar feeds state (version {STATE_VERSION})")
        return cls(path, data["feeds"])

    def entry(self, url: str) -> dict[str, Any]:
        """The state of one feed (created empty)."""
        entry = self.feeds.setdefault(url, {})
        entry.setdefault("seen", {})
        return entry

    def validators(self, url: str) -> tuple[str | None, str | None]:
        """``(etag, modified)`` of the feed's last fully sent fetch."""
        entry = self.feeds.get(url) or {}
        return entry.get("etag"), entry.get("modified")

    def is_seen(self, url: str, item_id: str) -> bool:
        """Whether this item was already sent (and acknowledged) from this feed."""
        return item_id in (self.feeds.get(url) or {}).get("seen", {})

    def record_sent(self, url: str, ids: Sequence[str], *, current: Sequence[str] = (), when: str | None = None,
                    max_seen: int = MAX_SEEN_PER_FEED) -> None:
        """Remember acknowledged ids; forget the oldest ids that are no longer in the feed beyond ``max_seen``."""
        when = when or _now()
        seen = self.entry(url)["seen"]
        for item_id in ids:
            seen.setdefault(item_id, when)
        if len(seen) > max_seen:
            keep = set(current)
            # Oldest first; ids still in the feed are never forgotten, or they would be sent again.
            removable = sorted((t, i) for i, t in seen.items() if i not in keep)
            for _, item_id in removable[: len(seen) - max_seen]:
                del seen[item_id]

    def record_poll(self, url: str, *, etag: str | None = None, modified: str | None = None,
                    update_validators: bool = False, error: str | None = None, when: str | None = None) -> None:
        """Note a poll; store new validators only when every item of that fetch was sent."""
        entry = self.entry(url)
        when = when or _now()
        entry["last_poll"] = when
        if error is None:
            entry["last_ok"] = when
            entry.pop("last_error", None)
        else:
            entry["last_error"] = error
        if update_validators:
            entry["etag"], entry["modified"] = etag, modified

    def to_json(self) -> dict[str, Any]:
        """The serialisable state."""
        return {"version": STATE_VERSION, "feeds": self.feeds}

    def save(self) -> None:
        """Write the state atomically (temporary file, fsync, rename); no-op without a path."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
        with tmp.open("w", encoding="utf-8") as out:
            json.dump(self.to_json(), out, ensure_ascii=False, indent=1, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)


@contextlib.contextmanager
def state_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock beside the state file, so two pollers cannot overwrite each other's state.

    Raises:
        FeedStateError: Another process holds the lock.
    """
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FeedStateError(f"another `khabar feeds` is polling with the state {path}") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- fetching ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Fetched:
    """A fetched feed: ``status`` 304 means not modified (``body`` empty)."""

    status: int
    body: bytes = b""
    etag: str | None = None
    modified: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    url: str = ""


def _decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.lower().strip()
    if encoding in ("gzip", "x-gzip"):
        return gzip.decompress(body)
    if encoding == "deflate":
        try:
            return zlib.decompress(body)
        except zlib.error:  # raw deflate without the zlib header, as some servers send
            return zlib.decompress(body, -zlib.MAX_WBITS)
    return body


def fetch(spec: FeedSpec, *, etag: str | None = None, modified: str | None = None, timeout: float = 30.0,
          max_bytes: int = MAX_FEED_BYTES, user_agent: str = USER_AGENT) -> Fetched:
    """Fetch a feed conditionally (``If-None-Match`` / ``If-Modified-Since``), or read a local file.

    The request is made here rather than by ``feedparser.parse(url, etag=..., modified=...)``, which
    sends the same headers but has no timeout: a stalled server would block every other feed.
    A local file's validator is its modification time and size.

    Raises:
        FeedError: HTTP error status, timeout, connection failure, missing file, or an oversized body.
    """
    if spec.is_file:
        path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(spec.url).path))
        try:
            stat = path.stat()
            signature = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
            if etag == signature:
                return Fetched(304, etag=etag, url=spec.url)
            if stat.st_size > max_bytes:
                raise FeedError(f"file of {stat.st_size} bytes is over the limit of {max_bytes}")
            return Fetched(200, path.read_bytes(), etag=signature, url=spec.url)
        except OSError as exc:
            raise FeedError(f"cannot read {path}: {exc.strerror or exc}") from exc
    headers = {"User-Agent": user_agent, "Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"}
    if etag:
        headers["If-None-Match"] = etag
    if modified:
        headers["If-Modified-Since"] = modified
    request = urllib.request.Request(spec.url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(max_bytes + 1)
            if len(body) > max_bytes:
                raise FeedError(f"response over the limit of {max_bytes} bytes")
            got = {k.lower(): v for k, v in response.headers.items()}
            body = _decompress(body, got.get("content-encoding", ""))
            return Fetched(response.status, body, got.get("etag"), got.get("last-modified"), got, response.url)
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return Fetched(304, etag=exc.headers.get("ETag") or etag,
                           modified=exc.headers.get("Last-Modified") or modified, url=spec.url)
        raise FeedError(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise FeedError(f"timed out after {timeout:g}s") from exc
        raise FeedError(f"cannot connect: {reason}") from exc
    except TimeoutError as exc:  # a read that stalls after the headers
        raise FeedError(f"timed out after {timeout:g}s") from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise FeedError(f"{type(exc).__name__}: {exc}") from exc


def parse_feed(fetched: Fetched) -> Any:
    """Parse fetched bytes with feedparser.

    A document feedparser cannot read (bozo) and that yields no entries, or that is no RSS/Atom at
    all (an HTML error page), is a :class:`FeedError`; a slightly broken feed whose items were
    recovered is accepted (:func:`poll_feed` rejects it when none of them is usable).
    """
    import feedparser

    # Without a Content-Type feedparser flags even a well-formed file as bozo; XML then names its encoding.
    headers = {"content-location": fetched.url, "content-type": "application/xml"}
    for name in ("content-type", "content-language"):
        if name in fetched.headers:
            headers[name] = fetched.headers[name]
    parsed = feedparser.parse(fetched.body, response_headers=headers)
    if not parsed.entries:
        if parsed.bozo:
            raise FeedError(f"malformed feed: {parsed.get('bozo_exception')}")
        if not parsed.get("version"):
            raise FeedError("not an RSS or Atom feed")
    return parsed


# --- polling ----------------------------------------------------------------------------------------------

@dataclass
class FeedReport:
    """What one poll of one feed did."""

    url: str
    source: str
    status: str = "ok"  # ok | not-modified | error | disabled
    items: int = 0
    new: int = 0
    sent: int = 0
    skipped: int = 0
    error: str | None = None
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One human-readable summary line."""
        head = f"{self.source:<20} {self.url}"
        if self.status == "error":
            return f"{head}: FAILED: {self.error}"
        if self.status in ("not-modified", "disabled"):
            return f"{head}: {self.status}"
        tail = f"; {self.skipped} item(s) skipped" if self.skipped else ""
        failed = f"; {self.new - self.sent} not acknowledged" if self.sent < self.new else ""
        return f"{head}: {self.items} item(s), {self.new} new, {self.sent} sent{failed}{tail}"


def send_messages(producer: Any, topic: str, messages: Sequence[Mapping[str, Any]],
                  timeout: float = 60.0) -> tuple[list[str], list[str]]:
    """Send and wait for every acknowledgement.

    Returns:
        ``(acknowledged ids, error texts)``.
    """
    from khabar.submit import encode

    futures = []
    for message in messages:
        key, value = encode(message)
        futures.append((message["id"], producer.send(topic, key=key, value=value)))
    producer.flush()
    acked, errors = [], []
    for item_id, future in futures:
        try:
            future.get(timeout=timeout)
            acked.append(item_id)
        except Exception as exc:
            errors.append(f"{item_id}: {type(exc).__name__}: {exc}")
    return acked, errors


def _benign(exc: Any) -> bool:
    """A bozo flag that says nothing about the items: a media type or charset the server got wrong."""
    import feedparser

    return isinstance(exc, (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType))


def poll_feed(spec: FeedSpec, state: FeedState, producer: Any, topic: str, *, timeout: float = 30.0) -> FeedReport:
    """Fetch one feed, send its new items, and record what Kafka acknowledged.

    The state is changed only after the acknowledgements: new ids are remembered only when
    acknowledged, and the feed's ETag/Last-Modified only when every new item was, so an unsent
    item is fetched and offered again next time instead of hiding behind a 304.
    """
    report = FeedReport(spec.url, spec.source)
    if not spec.enabled:
        report.status = "disabled"
        return report
    etag, modified = state.validators(spec.url)
    try:
        fetched = fetch(spec, etag=etag, modified=modified, timeout=spec.timeout or timeout)
        if fetched.status == 304:
            report.status = "not-modified"
            state.record_poll(spec.url)
            return report
        parsed = parse_feed(fetched)
    except FeedError as exc:
        report.status, report.error = "error", str(exc)
        state.record_poll(spec.url, error=report.error)
        return report
    current: list[str] = []
    fresh: list[dict[str, Any]] = []
    fresh_ids: set[str] = set()
    for index, entry in enumerate(parsed.entries):
        try:
            message = entry_to_message(entry, spec, parsed.get("feed"))
        except ItemError as exc:
            report.skipped += 1
            report.problems.append(f"item {index}: {exc}")
            continue
        current.append(message["id"])
        # A feed that repeats an item sends it once.
        if not state.is_seen(spec.url, message["id"]) and message["id"] not in fresh_ids:
            fresh_ids.add(message["id"])
            fresh.append(message)
    if parsed.bozo and not current:
        # feedparser's lenient parser "recovers" empty items from a truncated document: nothing usable.
        report.status, report.error = "error", f"malformed feed: {parsed.get('bozo_exception')}"
        state.record_poll(spec.url, error=report.error)
        return report
    if parsed.bozo and not _benign(parsed.get("bozo_exception")):
        log.warning("feed %s is not well-formed (%s); using the %d item(s) recovered", spec.url,
                    parsed.get("bozo_exception"), len(current))
    report.items = len(current)
    report.new = len(fresh)
    acked, errors = send_messages(producer, topic, fresh) if fresh else ([], [])
    report.sent = len(acked)
    state.record_sent(spec.url, acked, current=current)
    if errors:
        report.status = "error"
        report.error = f"{len(errors)} of {len(fresh)} message(s) not acknowledged: {errors[0]}"
    state.record_poll(spec.url, etag=fetched.etag, modified=fetched.modified, update_validators=not errors,
                      error=report.error)
    return report


def poll_all(config: FeedsConfig, state: FeedState, producer: Any, topic: str) -> list[FeedReport]:
    """Poll every feed once, saving the state after each feed; one feed's failure never stops the others."""
    reports = []
    for spec in config.feeds:
        try:
            report = poll_feed(spec, state, producer, topic, timeout=config.timeout)
        except Exception as exc:  # a bug or an unexpected library error in one feed must not stop the rest
            log.exception("feed %s failed", spec.url)
            report = FeedReport(spec.url, spec.source, status="error", error=f"{type(exc).__name__}: {exc}")
            state.record_poll(spec.url, error=report.error)
        state.save()
        reports.append(report)
    return reports


# --- command line -----------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The ``khabar feeds`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="khabar feeds",
        description="Poll RSS/Atom feeds and send new items to the khabar Kafka topic.",
        epilog="Exit status: 0 when every feed was polled, 1 when a feed failed (with --once), "
               "2 on a configuration or state error.")
    parser.add_argument("feeds", metavar="CONFIG", help="feeds file (.toml, .yaml): url, source, language per feed")
    parser.add_argument("--once", action="store_true", help="poll every feed once, print a summary, exit")
    parser.add_argument("--interval", type=float, metavar="SECONDS",
                        help="seconds between polls (default: the file's interval, else 900)")
    parser.add_argument("--state", metavar="PATH",
                        help="state file (default: $KHABAR_HOME/feeds-state/<topic>.json, ~/.cache/khabar)")
    parser.add_argument("--timeout", type=float, metavar="SECONDS", help="seconds per request (default: the file's)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only failures")
    group = parser.add_argument_group("configuration (flags > KHABAR_* environment > config file)")
    group.add_argument("--config", metavar="FILE", help="khabar TOML config (default: $KHABAR_CONFIG or ./khabar.toml)")
    group.add_argument("--bootstrap-servers", dest="kafka.bootstrap_servers", metavar="HOSTS")
    group.add_argument("--topic", dest="kafka.topic")
    return parser


def _print_reports(reports: Sequence[FeedReport], quiet: bool) -> None:
    for report in reports:
        if not quiet or report.status == "error":
            print(report.line(), file=sys.stderr if report.status == "error" else sys.stdout, flush=True)
        for problem in report.problems[:5]:
            print(f"    {problem}", file=sys.stderr)
    if not quiet:
        sent = sum(r.sent for r in reports)
        failed = sum(r.status == "error" for r in reports)
        print(f"{len(reports)} feed(s): {sent} message(s) sent, {failed} failed", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``khabar feeds``."""
    from khabar.config import ConfigError, load_config

    args = build_parser().parse_args(argv)
    try:
        cfg = load_config({k: v for k, v in vars(args).items() if "." in k}, config_file=args.config)
        feeds = load_feeds_config(args.feeds)
        if args.timeout is not None:
            feeds = FeedsConfig(feeds.feeds, feeds.interval, args.timeout)
        interval = args.interval if args.interval is not None else feeds.interval
        if interval <= 0:
            raise FeedConfigError("--interval must be positive")
        state_path = Path(args.state).expanduser() if args.state else default_state_path(cfg.kafka.topic)
    except (ConfigError, FeedConfigError) as exc:
        print(f"khabar feeds: configuration error: {exc}", file=sys.stderr)
        return 2

    from kafka.errors import KafkaError

    from khabar.connectors.kafka import ensure_topics, producer

    try:
        with state_lock(state_path):
            state = FeedState.load(state_path)
            try:
                # Only the document topic: the poller never writes dead letters.
                ensure_topics(cfg.kafka, {cfg.kafka.topic: cfg.kafka.partitions})
                prod = producer(cfg.kafka)
            except (KafkaError, OSError) as exc:
                print(f"khabar feeds: Kafka is not reachable at {cfg.kafka.bootstrap_servers} ({exc})", file=sys.stderr)
                return 1
            try:
                return _loop(feeds, state, prod, cfg.kafka.topic, once=args.once, interval=interval, quiet=args.quiet)
            finally:
                prod.close(timeout=10)
    except FeedStateError as exc:
        print(f"khabar feeds: {exc}", file=sys.stderr)
        return 2


def _loop(feeds: FeedsConfig, state: FeedState, prod: Any, topic: str, *, once: bool, interval: float,
          quiet: bool) -> int:
    def _stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _stop) if not once else None
    try:
        while True:
            started = time.monotonic()
            reports = poll_all(feeds, state, prod, topic)
            _print_reports(reports, quiet)
            if once:
                return 1 if any(r.status == "error" for r in reports) else 0
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        print("khabar feeds: stopped; the state holds every acknowledged item", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
