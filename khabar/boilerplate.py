"""Title, byline and boilerplate of scraped news text.

:func:`analyse` splits a plain text into lines and decides, line by line, what is the title, the
byline, the dateline, and what is site furniture to remove, keeping every removed line with its
reason and its span in the input text. Rules, in order of the text:

- *header*: furniture lines before the title (search boxes, "exclusive", tickers such as
  "اسرائیل در جنگ؛ روز ۴۳۵"); a line that is another line plus a site suffix ("T - It's Over
  9000!") gives the title T and is removed; otherwise the first headline-like line is the title;
  then a byline ("بلدي نيوز – (أيمن محمد)"), a dateline ("الجمعة 2016/04/15") and short
  kicker/tag lines between the title and the first paragraph;
- *anywhere*: lines listed in ``data/boilerplate.json`` (compared in match form), counters and
  separators ("//", "1"), captions repeated on consecutive lines, later repeats of a line, and
  lines that :class:`FurnitureLearner` has seen in many documents of the same source;
- *footer*: a related-article list (a header such as "مقالات ذات صلة" and the headlines after it)
  and credit lines ("ساهمت وكالة فرانس برس في هذا التقرير").

Body sentences are protected: a line of more than 25 words is only removed as an exact repeat.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from khabar.normalize import Normalized, match_key, normalize

__all__ = ["FurnitureLearner", "Structure", "analyse", "from_html"]

_DATA = Path(__file__).resolve().parent / "data" / "boilerplate.json"
_LINE_RE = re.compile(r"[^\n]+")
_WORD_RE = re.compile(r"[^\W_]+")
_END_PUNCT = tuple(".!؟?…:؛;»\"”)")
_SENTENCE_END = tuple(".!؟?…")
_NUMERIC_DATE_RE = re.compile(r"\d{1,4}\s*[/.\-]\s*\d{1,2}\s*[/.\-]\s*\d{1,4}")
_ONLY_DATE_WORDS_RE = re.compile(r"^[\w\s/.,:\-]*$")


@dataclass(frozen=True)
class _Rules:
    lines: frozenset[str]
    patterns: tuple[re.Pattern[str], ...]
    any_pattern: re.Pattern[str] | None  # the patterns as one alternation: one scan tells whether any matches
    related: frozenset[str]
    credits: tuple[re.Pattern[str], ...]
    bylines: tuple[re.Pattern[str], ...]
    separators: tuple[str, ...]
    separator_keys: tuple[str, ...]
    separator_needles: tuple[str, ...]  # the separator keys with a space either side, as looked for in a line
    dateline_max: int


def _alternation(patterns: list[str]) -> re.Pattern[str] | None:
    """One regex that matches somewhere iff one of ``patterns`` does (``None`` if they cannot be combined)."""
    if not patterns:
        return None
    try:
        combined = re.compile("|".join(f"(?:{p})" for p in patterns))
    except re.error:
        return None
    # A back-reference by number would point at another pattern's group once combined.
    if any(re.search(r"\\[1-9]", p) for p in patterns):
        return None
    return combined


@lru_cache(maxsize=1)
def _rules() -> _Rules:
    d = json.loads(_DATA.read_text(encoding="utf-8"))
    separator_keys = tuple(k for k in dict.fromkeys(match_key(x.strip()) for x in d["title_separators"]) if k)
    return _Rules(
        lines=frozenset(match_key(x) for x in d["lines"]),
        patterns=tuple(re.compile(p) for p in d["patterns"]),
        any_pattern=_alternation(d["patterns"]),
        related=frozenset(match_key(x) for x in d["related_headers"]),
        credits=tuple(re.compile(p) for p in d["credit_patterns"]),
        bylines=tuple(re.compile(p) for p in d["byline_patterns"]),
        separators=tuple(d["title_separators"]),
        separator_keys=separator_keys,
        separator_needles=tuple(f" {k} " for k in separator_keys),
        dateline_max=int(d["dateline_max_chars"]),
    )


@dataclass
class Structure:
    """What :func:`analyse` found in a text; all spans index the input text."""

    title: str | None = None
    title_span: tuple[int, int] | None = None
    byline: str | None = None
    byline_span: tuple[int, int] | None = None
    dateline_span: tuple[int, int] | None = None
    body: str = ""
    body_spans: list[tuple[int, int]] = field(default_factory=list)
    removed: list[dict] = field(default_factory=list)


class FurnitureLearner:
    """Learns, per source, the lines that repeat across many of its documents.

    Pure and bounded: at most ``max_sources`` sources (least recently seen dropped) and at most
    ``max_lines`` counted lines per source (the rarest dropped when full). Lines are kept as
    64-bit hashes of their match form (Python's string hash: a line's match form is hashed anyway
    when it is looked up, so the key costs nothing; the learner lives in one process, so the
    per-process hash seed does not matter). One learner per worker is enough.

    Example:
        >>> learner = FurnitureLearner(min_docs=3)
        >>> for _ in range(3):
        ...     learner.observe("site", ["اشترك في النشرة", "خبر مختلف"])
        >>> learner.is_furniture("site", "اشترك في النشرة")
        True
    """

    def __init__(
        self,
        *,
        max_sources: int = 500,
        max_lines: int = 4000,
        min_docs: int = 5,
        min_share: float = 0.3,
        max_line_chars: int = 200,
    ) -> None:
        self.max_sources = max_sources
        self.max_lines = max_lines
        self.min_docs = min_docs
        self.min_share = min_share
        self.max_line_chars = max_line_chars
        self._docs: OrderedDict[str, int] = OrderedDict()
        self._counts: dict[str, dict[int, int]] = {}

    @staticmethod
    def _key(line: str) -> int:
        return hash(match_key(line))

    def observe(self, source: str, lines: Iterable[str]) -> None:
        """Count the distinct short lines of one document of ``source``."""
        self._observe(source, lines, self._key)

    def _observe(self, source: str, lines: Iterable[str], key: Callable[[str], int]) -> None:
        keys = {key(x) for x in lines if x.strip() and len(x) <= self.max_line_chars}
        if source in self._docs:
            self._docs.move_to_end(source)
        else:
            if len(self._docs) >= self.max_sources:
                old, _ = self._docs.popitem(last=False)
                self._counts.pop(old, None)
            self._docs[source] = 0
            self._counts[source] = {}
        self._docs[source] += 1
        counts = self._counts[source]
        for k in keys:
            counts[k] = counts.get(k, 0) + 1
        if len(counts) > self.max_lines:
            # Drop the rarer half: furniture is by definition frequent, so it survives.
            keep = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)[: self.max_lines // 2]
            self._counts[source] = dict(keep)

    def is_furniture(self, source: str, line: str) -> bool:
        """True if ``line`` appeared in at least ``min_share`` of ``source``'s documents."""
        return self._is_furniture(source, line, self._key)

    def _is_furniture(self, source: str, line: str, key: Callable[[str], int]) -> bool:
        docs = self._docs.get(source, 0)
        if docs < self.min_docs or len(line) > self.max_line_chars:
            return False
        n = self._counts.get(source, {}).get(key(line), 0)
        return n >= 3 and n / docs >= self.min_share

    def __len__(self) -> int:
        return sum(len(c) for c in self._counts.values())


@dataclass(slots=True)
class _Line:
    start: int
    end: int
    text: str  # source text of the line, stripped
    key: str  # match form
    words: int
    reason: str | None = None
    role: str | None = None  # title / byline / dateline


_BMP = 0x10000
_COUNT_MIN = 400  # from this many characters one table look-up over the text beats a regex per line


@lru_cache(maxsize=1)
def _word_chars() -> np.ndarray:
    """Which BMP code points ``_WORD_RE`` counts as word characters, as ``re`` decides."""
    mask = np.zeros(_BMP, dtype=bool)
    for m in _WORD_RE.finditer("".join(map(chr, range(_BMP)))):
        mask[m.start() : m.end()] = True
    return mask


def _word_counts(key: str, spans: list[tuple[int, int]]) -> list[int] | None:
    """``len(_WORD_RE.findall(key[a:b]))`` per span (lines: newline-bounded), or ``None`` if not computed."""
    if len(key) < _COUNT_MIN:
        return None
    cp = np.frombuffer(key.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    if int(cp.max()) >= _BMP:
        return None
    word = _word_chars()[cp]
    starts = word.copy()
    starts[1:] &= ~word[:-1]
    # Words never cross a line boundary (a newline is no word character), so count word starts per line.
    before = np.zeros(len(cp) + 1, dtype=np.int64)
    np.cumsum(starts, out=before[1:])
    bounds = np.array(spans, dtype=np.int64)
    return (before[bounds[:, 1]] - before[bounds[:, 0]]).tolist()


def _lines(text: str, norm: Normalized) -> list[_Line]:
    key_text = norm.match
    found = [(m.span(), m.group()) for m in _LINE_RE.finditer(key_text)]
    if not found:
        return []
    spans = [span for span, _ in found]
    counts = _word_counts(key_text, spans)
    if counts is None:
        counts = [len(_WORD_RE.findall(key)) for _, key in found]
    return [
        _Line(s, e, text[s:e], key, words)
        for (s, e), (_, key), words in zip(norm.spans_to_source(spans, "match"), found, counts, strict=True)
    ]


def _is_furniture(line: _Line, rules: _Rules) -> str | None:
    if line.key in rules.lines:
        return "site furniture"
    if len(line.key) <= 160:
        if rules.any_pattern is not None:
            if rules.any_pattern.search(line.key):
                return "counter or separator" if line.words <= 1 else "site furniture"
            return None
        for p in rules.patterns:
            if p.search(line.key):
                return "counter or separator" if line.words <= 1 else "site furniture"
    return None


def _is_credit(line: _Line, rules: _Rules) -> bool:
    return len(line.key) <= 160 and any(p.search(line.key) for p in rules.credits)


def _headline_like(line: _Line) -> bool:
    return 2 <= line.words <= 25 and len(line.text) <= 220 and not line.text.endswith(_SENTENCE_END)


def _is_dateline(line: _Line, rules: _Rules) -> bool:
    return (
        len(line.text) <= rules.dateline_max
        and line.words <= 6
        and _NUMERIC_DATE_RE.search(line.key) is not None
    )


def _byline(line: _Line, rules: _Rules) -> str | None:
    if line.words > 7 or len(line.text) > 80 or line.text.endswith(_SENTENCE_END):
        return None
    for p in rules.bylines:
        m = p.match(line.text)
        if m:
            return m.group("name").strip(" ()")
    return None


def analyse(
    text: str,
    *,
    source: str | None = None,
    title: str | None = None,
    learner: FurnitureLearner | None = None,
    norm: Normalized | None = None,
) -> Structure:
    """Find title, byline and boilerplate in a plain text.

    Args:
        text: the input text.
        source: the site/source name, used with ``learner``.
        title: a title given with the message, if any (found in the text or used as is).
        learner: per-source furniture learner; it is consulted, then fed this document's lines.
        norm: ``normalize(text)`` if already computed.

    Returns:
        A :class:`Structure` whose spans index ``text``.
    """
    rules = _rules()
    norm = norm or normalize(text)
    lines = _lines(text, norm)
    st = Structure()
    if not lines:
        return st

    # The learner keys a line by its match form, which is already at hand: normalisation is local to the token,
    # so match_key(line.text) == line.key (a unit test holds it to that).
    match_form = {ln.text: ln.key for ln in lines}

    def line_key(line: str) -> int:
        key = match_form.get(line)
        return FurnitureLearner._key(line) if key is None else hash(key)

    own_learner = type(learner) is FurnitureLearner  # a subclass may override the public methods
    last = len(lines) - 1
    for i, ln in enumerate(lines):
        ln.reason = _is_furniture(ln, rules)
        if ln.reason == "counter or separator" and 2 < i < last - 2 and any(ch.isdigit() for ch in ln.key):
            # A lone number inside the body is a list marker, not a page counter.
            ln.reason = None
        if (
            ln.reason is None
            and learner is not None
            and source
            and ln.words <= 25
            and (
                learner._is_furniture(source, ln.text, line_key)
                if own_learner
                else learner.is_furniture(source, ln.text)
            )
        ):
            ln.reason = "repeated across documents of this source"

    # Title given with the message: find it (possibly with a site suffix) in the text.
    given_key = match_key(title) if title else None

    # Site-suffixed title: line A == line B + separator + suffix.
    keys = {ln.key: i for i, ln in reversed(list(enumerate(lines)))}
    title_idx: int | None = None
    for i, ln in enumerate(lines[:8]):
        for sep_key in rules.separator_needles:
            cut = ln.key.rfind(sep_key)
            if cut > 0:
                head = ln.key[:cut]
                j = keys.get(head)
                if (j is not None and j != i) or (given_key and head == given_key):
                    ln.reason = "title repeated with site name"
                    if j is not None and j != i:
                        title_idx = j
                    break
        if title_idx is not None:
            break

    if title_idx is None and given_key:
        for i, ln in enumerate(lines[:8]):
            if ln.key == given_key:
                title_idx = i
                break
    if title_idx is None and not title:
        for i, ln in enumerate(lines[:8]):
            if ln.reason is not None:
                continue
            if _headline_like(ln) and i + 1 < len(lines):
                # A headline stands before more text; one more plain sentence is the body.
                title_idx = i
            break
    if title_idx is not None:
        tl = lines[title_idx]
        tl.role, tl.reason = "title", None
        st.title, st.title_span = tl.text, (tl.start, tl.end)
        # Furniture above the title is header furniture even when the list does not know it.
        for ln in lines[:title_idx]:
            if ln.reason is None and ln.words <= 8 and not ln.text.endswith(_SENTENCE_END):
                ln.reason = "header furniture"
    elif title:
        st.title = title

    # Header after the title: byline, dateline, kickers until the first paragraph.
    start = (title_idx + 1) if title_idx is not None else 0
    for ln in lines[start : start + 4]:
        if ln.reason is not None:
            continue
        if st.byline is None and (name := _byline(ln, rules)):
            ln.role = "byline"
            st.byline, st.byline_span = name, (ln.start, ln.end)
            continue
        if st.dateline_span is None and _is_dateline(ln, rules):
            ln.role = "dateline"
            st.dateline_span = (ln.start, ln.end)
            continue
        if title_idx is not None and ln.words <= 8 and not ln.text.endswith(_END_PUNCT):
            nxt = lines.index(ln) + 1
            if nxt < len(lines) and lines[nxt].words > ln.words:
                ln.reason = "kicker or tag line"
                continue
        break

    # Repeats: consecutive identical short lines are captions; later repeats are duplicates.
    seen: dict[str, int] = {}
    for i, ln in enumerate(lines):
        if ln.role or ln.reason:
            seen.setdefault(ln.key, i)
            continue
        prev = lines[i - 1] if i > 0 else None
        if (
            prev is not None
            and prev.key == ln.key
            and 3 <= ln.words <= 25
            and not ln.text.endswith(_SENTENCE_END)
        ):
            # A photo caption printed twice (once as alt text): neither copy is body text.
            ln.reason = "duplicated caption"
            if prev.role is None and (prev.reason is None or prev.reason == "duplicated caption"):
                prev.reason = "duplicated caption"
        elif ln.key in seen and ln.words >= 5 and (lines[seen[ln.key]].role != "title" or i > 8):
            # Short repeats ("1.", "می‌دانم.") are often legitimate; long ones are copies.
            ln.reason = "duplicate line"
        seen.setdefault(ln.key, i)

    # Footer: related-article lists and credit lines.
    n = len(lines)
    for i, ln in enumerate(lines):
        if ln.key in rules.related and i >= n // 3 and i > 0:
            tail = lines[i + 1 :]
            if all(x.words <= 25 for x in tail):
                ln.reason = "related articles"
                for x in tail:
                    if x.role is None:
                        x.reason = x.reason or "related articles"
                break
    for ln in reversed(lines):
        if ln.reason or ln.role:
            continue
        if _is_credit(ln, rules):
            ln.reason = "credit line"
            continue
        break

    body_parts: list[str] = []
    # _disp_index, inlined: it runs twice per body line.
    display, dmap, nd = norm.display, norm.display_map, len(norm.display)
    for ln in lines:
        if ln.role:
            continue
        if ln.reason:
            st.removed.append({"start": ln.start, "end": ln.end, "text": ln.text, "reason": ln.reason})
        else:
            st.body_spans.append((ln.start, ln.end))
            body_parts.append(display[bisect_left(dmap, ln.start, 0, nd) : bisect_left(dmap, ln.end, 0, nd)].strip())
    st.body = "\n\n".join(p for p in body_parts if p)

    if learner is not None and source:
        body_lines = [ln.text for ln in lines if ln.role != "title"]
        if own_learner:
            learner._observe(source, body_lines, line_key)
        else:
            learner.observe(source, body_lines)
    return st


def _disp_index(norm: Normalized, src: int) -> int:
    """First display index whose source position is at or after ``src``."""
    return bisect_left(norm.display_map, src, 0, len(norm.display))


def from_html(html: str) -> str:
    """Main text of an HTML page (trafilatura), or ``""`` when nothing is found."""
    import trafilatura

    text = trafilatura.extract(html, include_comments=False, include_tables=False, favor_precision=True)
    return text or ""
