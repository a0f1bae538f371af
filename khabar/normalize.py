"""Normalisation of Arabic and Persian text with offset maps back to the input.

:func:`normalize` returns two forms of a text, each with a map back to the input:

*display* form
    What a reader sees, otherwise as written: ``\\r\\n`` and other line separators become ``\\n``;
    runs of spaces/tabs/NBSP become one space; spaces at line ends go; three or more line breaks
    become one blank line; leading/trailing whitespace goes. Arabic presentation forms and other
    compatibility characters are folded with NFKC (``ﻻ`` -> ``لا``). Invisible marks (LRM/RLM,
    bidi embeddings and isolates, ALM, BOM, ZWSP, soft hyphen, stray C0/C1 controls) are removed.
    ZWNJ is kept: it is part of Persian spelling.

*match* form (keys and look-ups), derived from the display form
    - diacritics (harakat, shadda, sukun, dagger alef, Quranic marks) and tatweel are removed
      (the same character classes as ``pyarabic.araby.strip_tashkeel``/``strip_tatweel``);
    - alef forms أ إ آ ٱ -> ا; hamza on waw ؤ -> و; hamza on ya ئ -> ي (folded: a key never depends
      on the hamza seat); standalone ء is kept;
    - ى, Persian ی -> ي; Persian ک -> ك (Persian typed with Arabic letters, as old Fars News does,
      matches Persian typed with Persian letters); ة, ۀ, ھ -> ه;
    - Persian (۰-۹) and Arabic-Indic (٠-٩) digits -> ASCII; ، ؛ ؟ ٫ ٬ -> , ; ? . ,; dashes -> ``-``;
    - every double quotation mark (« » “ ” „ ") -> ``"`` and every single one (‹ › ‘ ’ ') -> ``'``;
      :func:`quote_mark` classifies the original mark (double/single, open/close/either);
    - Latin letters are lower-cased;
    - ZWNJ -> a plain space, and the common *missing half-space* spellings are split by the rules in
      ``data/halfspace.json`` (``رئیسجمهوری`` = ``رئیس‌جمهوری`` = ``رئیس جمهوری`` -> ``رئيس جمهوري``;
      ``میشود`` -> ``مي شود`` when written with Persian ی; ``پایگاههای`` -> ``پايگاه هاي``);
    - runs of spaces collapse to one.

Every rule is local to a token, so ``match_key(s) == normalize(s).match`` and a key computed for a
gazetteer entry is found verbatim inside the match form of any text that contains the entry.

Maps: ``display[i]`` came from ``source[display_map[i]]`` (an inserted character points at the
source of the character that follows it); ``display_map`` has ``len(display) + 1`` entries and the
last is ``len(source)``. :meth:`Normalized.to_source` turns a span of either form into the
tightest span of the source that produced it, so ``source[s:e]`` is what to report.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from operator import itemgetter
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"

__all__ = [
    "Normalized",
    "match_key",
    "match_tokens",
    "normalize",
    "quote_mark",
]


def _ranges(pairs: Sequence[Sequence[str]]) -> list[str]:
    out: list[str] = []
    for lo, hi in pairs:
        out.extend(chr(c) for c in range(int(lo, 16), int(hi, 16) + 1))
    return out


@dataclass(frozen=True)
class _Tables:
    display_table: dict[int, str]
    display_chars: re.Pattern[str]
    display_special: re.Pattern[str]
    display_expand: dict[str, str]
    match_table: dict[int, str]
    match_delete: re.Pattern[str]
    quotes: dict[str, tuple[str, str]]
    compounds: re.Pattern[str] | None
    compound_splits: dict[str, tuple[int, ...]]
    suffix_re: re.Pattern[str]
    prefix_re: re.Pattern[str]
    prefix_exact: frozenset[str]
    prefix_blocked: tuple[str, ...]
    prefix_needs_persian_yeh: bool


@lru_cache(maxsize=1)
def _tables() -> _Tables:
    cmap = json.loads((DATA_DIR / "charmap.json").read_text(encoding="utf-8"))
    half = json.loads((DATA_DIR / "halfspace.json").read_text(encoding="utf-8"))
    disp = cmap["display"]

    table: dict[int, str] = {}
    expand: dict[str, str] = {}
    for ch in _ranges(disp["nfkc_ranges"]):
        folded = unicodedata.normalize("NFKC", ch)
        if folded == ch or not folded:
            continue
        if len(folded) == 1:
            table[ord(ch)] = folded
        else:
            expand[ch] = folded
    for ch in disp["to_space"]:
        table[ord(ch)] = " "
    deletions = set(disp["delete"]) | set(_ranges(disp["delete_control_ranges"]))
    deletions -= {"\n", "\t", "\r"}
    for ch in disp["to_newline"]:
        deletions.discard(ch)
        table[ord(ch)] = "\n"
    for ch in deletions:
        table.pop(ord(ch), None)
    # "\r\n" must become one break: the CR is translated to "\n" first, so the pair shows up as
    # "\n\n" only if it really was CR LF; we delete the LF of a CR LF pair via a special match.
    special_chars = "".join(sorted(deletions | set(expand)))
    display_special = re.compile(
        "(?P<crlf>(?<=\r)\n)|(?P<special>[" + re.escape(special_chars) + "])"
    )

    mt: dict[int, str] = {ord(k): v for k, v in cmap["match"]["fold"].items()}
    quotes: dict[str, tuple[str, str]] = {k: (v[0], v[1]) for k, v in cmap["quotes"].items()}
    for q, (kind, _) in quotes.items():
        mt[ord(q)] = '"' if kind == "double" else "'"
    for c in range(ord("A"), ord("Z") + 1):
        mt[c] = chr(c + 32)
    mdel = set(cmap["match"]["delete"]) | set(_ranges(cmap["match"]["delete_ranges"]))
    match_delete = re.compile("[" + re.escape("".join(sorted(mdel))) + "]+")

    def fold(word: str) -> str:
        # Data files may be written in either spelling; keys must be in match-form letters.
        return match_delete.sub("", word.translate(mt))

    splits: dict[str, tuple[int, ...]] = {}
    for comp in half["compounds"]:
        parts = [fold(p) for p in comp.split("|")]
        offs, acc = [], 0
        for p in parts[:-1]:
            acc += len(p)
            offs.append(acc)
        splits["".join(parts)] = tuple(offs)
    alts = "|".join(re.escape(k) for k in sorted(splits, key=len, reverse=True))
    compounds = re.compile("(" + alts + ")") if alts else None
    suffixes = "|".join(re.escape(fold(s)) for s in sorted(half["suffixes_after_heh"], key=len, reverse=True))
    # Patterns start with a literal so the regex engine can skip ahead; context is checked in Python.
    suffix_re = re.compile(r"ه(?=(?:" + suffixes + r")(?![^\W\d_]))")
    prefixes = "|".join(re.escape(fold(p)) for p in sorted(half["verb_prefixes"], key=len, reverse=True))
    prefix_re = re.compile(r"(?:" + prefixes + r")(?=[^\W\d_]{2})")
    nvp = half["not_verb_prefix"]
    return _Tables(
        display_table=table,
        display_chars=re.compile("[" + re.escape("".join(sorted(chr(c) for c in table))) + "]"),
        display_special=display_special,
        display_expand=expand,
        match_table=mt,
        match_delete=match_delete,
        quotes=quotes,
        compounds=compounds,
        compound_splits=splits,
        suffix_re=suffix_re,
        prefix_re=prefix_re,
        prefix_exact=frozenset(fold(w) for w in nvp["exact"]),
        prefix_blocked=tuple(fold(w) for w in nvp["prefix"]),
        prefix_needs_persian_yeh=bool(half.get("verb_prefix_needs_persian_yeh", True)),
    )


# Ordered so the common single space between words is rejected quickly.
_WS_RE = re.compile(r" ?\n[ \n]*| {2,}[ \n]*|\A[ \n]+|[ \n]+\Z")
_MATCH_WS_RE = _WS_RE
_TOKEN_RE = re.compile(r"[^\W_]+")
_WORD_AT_RE = re.compile(r"[^\W\d_]+")


@dataclass(frozen=True)
class Normalized:
    """A text in display and match form, each with a map back to ``source``."""

    source: str
    display: str
    display_map: tuple[int, ...]
    match: str
    match_map: tuple[int, ...]
    display_ends: tuple[int, ...] = field(default=(), repr=False)
    match_ends: tuple[int, ...] = field(default=(), repr=False)

    def to_source(self, start: int, end: int, form: str = "match") -> tuple[int, int]:
        """Map the span ``[start, end)`` of the display or match form to a span of ``source``.

        Args:
            start: start index in the chosen form.
            end: end index (exclusive) in the chosen form.
            form: ``"match"`` or ``"display"``.

        Returns:
            ``(s, e)`` with ``0 <= s <= e <= len(source)``; ``source[s:e]`` produced the span.
        """
        if form == "match":
            starts, ends, n = self.match_map, self.match_ends, len(self.match)
        elif form == "display":
            starts, ends, n = self.display_map, self.display_ends, len(self.display)
        else:
            raise ValueError(f"unknown form {form!r}")
        start = min(max(start, 0), n)
        end = min(max(end, start), n)
        if end == start:
            s = starts[start]
            return s, s
        s = starts[start]
        e = max(ends[i] for i in range(start, end)) if end - start < 4 else max(ends[start:end])
        return s, max(e, s)


def _pass(
    text: str,
    pattern: re.Pattern[str],
    repl: Callable[[re.Match[str], str], tuple[str, list[int]]],
) -> tuple[str, list[int]]:
    """Rewrite the matches of ``pattern``; return the new text and, per char, its index in ``text``.

    ``repl`` returns the replacement and, for each of its characters, an index into ``text``.
    Untouched stretches are copied with their indices, so the work is per match, not per char.
    """
    pieces: list[str] = []
    idx: list[int] = []
    pos = 0
    for m in pattern.finditer(text):
        a, b = m.span()
        if a > pos:
            pieces.append(text[pos:a])
            idx.extend(range(pos, a))
        r, ri = repl(m, text)
        pieces.append(r)
        idx.extend(ri)
        pos = b
    if pos == 0 and not pieces:
        return text, list(range(len(text)))
    pieces.append(text[pos:])
    idx.extend(range(pos, len(text)))
    return "".join(pieces), idx


def _ws_display(m: re.Match[str], text: str) -> tuple[str, list[int]]:
    a, b = m.span()
    if a == 0 or b == len(text):
        return "", []
    run = m.group()
    nl = run.count("\n")
    if nl == 0:
        return " ", [a]
    first = a + run.index("\n")
    if nl == 1:
        return "\n", [first]
    second = a + run.index("\n", first - a + 1)
    return "\n\n", [first, second]


def _ws_match(m: re.Match[str], text: str) -> tuple[str, list[int]]:
    a, b = m.span()
    run = m.group()
    if "\n" in run:
        first = a + run.index("\n")
        if a == 0 or b == len(text):
            return "", []
        return "\n", [first]
    if a == 0 or b == len(text):
        return "", []
    return " ", [a]


def _pick(values: list[int], idx: list[int]) -> list[int]:
    """``[values[i] for i in idx]``, done in C."""
    if not idx:
        return []
    if len(idx) == 1:
        return [values[idx[0]]]
    return list(itemgetter(*idx)(values))


def _display(text: str) -> tuple[str, list[int], list[int]]:
    t = _tables()
    s1 = text.translate(t.display_table) if t.display_chars.search(text) else text
    starts: list[int]
    ends: list[int]
    if t.display_special.search(text) is None:
        s2 = s1
        starts = list(range(len(s1)))
        ends = list(range(1, len(s1) + 1))
    else:
        pieces: list[str] = []
        starts, ends = [], []
        pos = 0
        # Positions agree between text and s1 (the table is 1:1); CR LF is only visible in text.
        for m in t.display_special.finditer(text):
            a = m.start()
            if a > pos:
                pieces.append(s1[pos:a])
                starts.extend(range(pos, a))
                ends.extend(range(pos + 1, a + 1))
            if m.group("crlf") is not None:
                if starts and starts[-1] == a - 1:
                    ends[-1] = a + 1
            else:
                ch = text[a]
                rep = t.display_expand.get(ch)
                if rep:
                    pieces.append(rep)
                    starts.extend([a] * len(rep))
                    ends.extend([a + 1] * len(rep))
            pos = a + 1
        if pos < len(s1):
            pieces.append(s1[pos:])
            starts.extend(range(pos, len(s1)))
            ends.extend(range(pos + 1, len(s1) + 1))
        s2 = "".join(pieces)
    s3, idx = _pass(s2, _WS_RE, _ws_display)
    if s3 == text:
        return text, starts, ends
    if len(idx) == len(s2) and s3 is s2:
        return s3, starts, ends
    return s3, _pick(starts, idx), _pick(ends, idx)


def _is_letter(ch: str) -> bool:
    return ch.isalpha()


def _split_points(s: str, persian_yeh: Callable[[int], bool]) -> list[int]:
    """Positions in the folded string ``s`` where a missing half-space gets a space."""
    t = _tables()
    points: set[int] = set()
    if t.compounds is not None:
        pos = 0
        while True:
            m = t.compounds.search(s, pos)
            if m is None:
                break
            for off in t.compound_splits[m.group(1)]:
                points.add(m.start() + off)
            # Compounds may overlap (امیرعبداللهیان): look again from the next character.
            pos = m.start() + 1
    for m in t.suffix_re.finditer(s):
        a = m.start()
        if a >= 2 and _is_letter(s[a - 1]) and _is_letter(s[a - 2]):
            points.add(a + 1)
    for m in t.prefix_re.finditer(s):
        a, b = m.span()
        if a > 0 and (_is_letter(s[a - 1]) or s[a - 1].isdigit()):
            continue
        if t.prefix_needs_persian_yeh and not persian_yeh(b - 1):
            continue
        w = _WORD_AT_RE.match(s, a)
        word = w.group() if w else ""
        if word in t.prefix_exact or word.startswith(t.prefix_blocked):
            continue
        points.add(b)
    return sorted(p for p in points if 0 < p < len(s) and s[p - 1] != " " and s[p] != " ")


def _delete_marks(text: str, pattern: re.Pattern[str]) -> tuple[str, list[int], list[int]]:
    """Delete ``pattern`` matches; a deleted run joins the span of the character before it."""
    pieces: list[str] = []
    idx: list[int] = []
    eidx: list[int] = []
    pos = 0
    for m in pattern.finditer(text):
        a, b = m.span()
        if a > pos:
            pieces.append(text[pos:a])
            idx.extend(range(pos, a))
            eidx.extend(range(pos + 1, a + 1))
        if idx and idx[-1] == a - 1:
            # Diacritics belong to the letter they sit on: keep them inside its span.
            eidx[-1] = b
        pos = b
    if not pieces and pos == 0:
        return text, list(range(len(text))), list(range(1, len(text) + 1))
    pieces.append(text[pos:])
    idx.extend(range(pos, len(text)))
    eidx.extend(range(pos + 1, len(text) + 1))
    return "".join(pieces), idx, eidx


def _match(display: str) -> tuple[str, list[int], list[int], list[int]]:
    """Match form of ``display``; per char its start and end index into ``display``; inserted chars."""
    t = _tables()
    s1 = display.translate(t.match_table)
    s2, idx, eidx = _delete_marks(s1, t.match_delete)
    s3, idx3 = _pass(s2, _MATCH_WS_RE, _ws_match)
    if len(idx3) != len(s2) or s3 is not s2:
        idx, eidx = _pick(idx, idx3), _pick(eidx, idx3)
    # Index into display so the Persian-yeh check sees the unfolded letter.
    points = _split_points(s3, lambda i: display[idx[i]] == "\u06cc")
    inserted: list[int] = []
    if points:
        pieces: list[str] = []
        nidx: list[int] = []
        neidx: list[int] = []
        pos = 0
        for p in points:
            pieces.append(s3[pos:p])
            nidx.extend(idx[pos:p])
            neidx.extend(eidx[pos:p])
            inserted.append(len(nidx))
            pieces.append(" ")
            # An inserted space is an empty span just before the character it precedes.
            nidx.append(idx[p])
            neidx.append(idx[p])
            pos = p
        pieces.append(s3[pos:])
        nidx.extend(idx[pos:])
        neidx.extend(eidx[pos:])
        s3, idx, eidx = "".join(pieces), nidx, neidx
    return s3, idx, eidx, inserted


_RECENT: dict[str, Normalized] = {}
_RECENT_MAX = 8


def normalize(text: str) -> Normalized:
    """Normalise ``text`` into display and match forms with maps back to ``text``.

    The last few results are remembered: every enrichment step may call ``normalize`` on the same
    text without paying for it again.

    Args:
        text: any Unicode string.

    Returns:
        A :class:`Normalized`; see the module docstring for the rules.
    """
    hit = _RECENT.get(text)
    if hit is not None:
        return hit
    result = _normalize(text)
    if len(_RECENT) >= _RECENT_MAX:
        _RECENT.clear()
    _RECENT[text] = result
    return result


def _normalize(text: str) -> Normalized:
    display, dstarts, dends = _display(text)
    match, midx, meidx, inserted = _match(display)
    n = len(text)
    if display is text:
        # Display is the source itself: its maps are the identity.
        mstarts, mends = midx, meidx
    else:
        mstarts = _pick(dstarts, midx)
        mends = _pick([0, *dends], meidx)
        for k in inserted:
            # An inserted space is an empty span at the source of the character it precedes.
            mends[k] = mstarts[k]
    return Normalized(
        source=text,
        display=display,
        display_map=(*dstarts, n),
        match=match,
        match_map=(*mstarts, n),
        display_ends=tuple(dends),
        match_ends=tuple(mends),
    )


@lru_cache(maxsize=65536)
def match_key(text: str) -> str:
    """Match form of a short string (gazetteer keys, cue words); equals ``normalize(text).match``."""
    t = _tables()
    # Fast path without offset maps for the common one-line key; anything unusual takes the full path.
    if "\n" not in text and "\r" not in text and t.display_special.search(text) is None:
        d = text.translate(t.display_table) if t.display_chars.search(text) else text
        if "\n" not in d:
            d = " ".join(filter(None, d.split(" ")))
            m = t.match_delete.sub("", d.translate(t.match_table))
            m = " ".join(filter(None, m.split(" ")))
            if t.prefix_re.search(m) is None:
                points = _split_points(m, lambda _i: False)
                if not points:
                    return m
                parts, pos = [], 0
                for p in points:
                    parts.append(m[pos:p])
                    pos = p
                parts.append(m[pos:])
                return " ".join(parts)
    display, _, _ = _display(text)
    return _match(display)[0]


def match_tokens(text: str | Normalized) -> list[tuple[str, int, int]]:
    """Tokens of the match form with their spans in the source text.

    Args:
        text: a string or an already computed :class:`Normalized`.

    Returns:
        ``[(token, start, end), ...]`` where ``token`` is in match form and ``start``/``end`` index
        the source text. A token is a run of letters/digits; ZWNJ and punctuation separate tokens.
    """
    norm = text if isinstance(text, Normalized) else normalize(text)
    out: list[tuple[str, int, int]] = []
    for m in _TOKEN_RE.finditer(norm.match):
        s, e = norm.to_source(m.start(), m.end(), "match")
        out.append((m.group(), s, e))
    return out


def quote_mark(ch: str) -> tuple[str, str] | None:
    """Classify a quotation mark.

    Returns:
        ``(kind, side)`` with kind ``"double"``/``"single"`` and side ``"open"``/``"close"``/``"either"``
        (“ and ” are used both ways round in right-to-left text), or ``None`` if ``ch`` is not one.
    """
    return _tables().quotes.get(ch)
