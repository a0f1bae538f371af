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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from operator import itemgetter
from pathlib import Path

import ahocorasick
import numpy as np

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
    display_special_chars: re.Pattern[str]
    display_expand: dict[str, str]
    display_delete: frozenset[str]
    match_table: dict[int, str]
    match_keeps_persian_yeh: dict[int, str] | None  # match_table leaving ی unfolded, if nothing else folds to it
    match_delete: re.Pattern[str]
    match_delete_chars: frozenset[str]
    quotes: dict[str, tuple[str, str]]
    compound_finder: ahocorasick.Automaton | None
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
    finder: ahocorasick.Automaton | None = None
    if splits:
        finder = ahocorasick.Automaton()
        for comp in splits:
            finder.add_word(comp, comp)
        finder.make_automaton()
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
        display_special_chars=re.compile("[" + re.escape(special_chars) + "]"),
        display_expand=expand,
        display_delete=frozenset(deletions),
        match_table=mt,
        match_keeps_persian_yeh=(
            None
            if "\u06cc" in mt.values() or "\u06cc" in mdel
            else {k: v for k, v in mt.items() if k != 0x06CC}
        ),
        match_delete=match_delete,
        match_delete_chars=frozenset(mdel),
        quotes=quotes,
        compound_finder=finder,
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
    # True when the ends never decrease, so the end of a span is that of its last character; the fast path
    # checks this (it always holds there), other constructions leave it False and the maximum is taken.
    display_ends_ordered: bool = field(default=False, repr=False, compare=False)
    match_ends_ordered: bool = field(default=False, repr=False, compare=False)

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
            starts, ends, n, ordered = self.match_map, self.match_ends, len(self.match), self.match_ends_ordered
        elif form == "display":
            starts, ends, n, ordered = self.display_map, self.display_ends, len(self.display), self.display_ends_ordered
        else:
            raise ValueError(f"unknown form {form!r}")
        start = min(max(start, 0), n)
        end = min(max(end, start), n)
        if end == start:
            s = starts[start]
            return s, s
        s = starts[start]
        if ordered:
            e = ends[end - 1]
        else:
            e = max(ends[i] for i in range(start, end)) if end - start < 4 else max(ends[start:end])
        return s, max(e, s)

    def spans_to_source(self, spans: Iterable[tuple[int, int]], form: str = "match") -> list[tuple[int, int]]:
        """:meth:`to_source` of many non-empty spans, each within the chosen form.

        Args:
            spans: ``(start, end)`` pairs with ``0 <= start < end <= len(form)``.
            form: ``"match"`` or ``"display"``.

        Returns:
            ``[to_source(start, end, form), ...]`` in the order of ``spans``.
        """
        if form == "match":
            starts, ends, ordered = self.match_map, self.match_ends, self.match_ends_ordered
        elif form == "display":
            starts, ends, ordered = self.display_map, self.display_ends, self.display_ends_ordered
        else:
            raise ValueError(f"unknown form {form!r}")
        out: list[tuple[int, int]] = []
        for a, b in spans:
            s = starts[a]
            out.append((s, max(ends[b - 1] if ordered else max(ends[a:b]), s)))
        return out


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


def _split_points(s: str, persian_yeh: Callable[[int], bool], verb_prefixes: bool = True) -> list[int]:
    """Positions in the folded string ``s`` where a missing half-space gets a space.

    ``verb_prefixes=False`` skips the verb-prefix rule; only for callers who know it cannot apply (with
    ``prefix_needs_persian_yeh``, a text without Persian ی).
    """
    t = _tables()
    points: set[int] = set()
    if t.compound_finder is not None:
        # Every position where a compound starts counts, with the longest compound starting there (what searching
        # again from the next character with the longest-first alternation finds; compounds may overlap, as in
        # امیرعبداللهیان). One Aho-Corasick pass instead of a regex search per hit.
        longest: dict[int, str] = {}
        for end, comp in t.compound_finder.iter(s):
            start = end - len(comp) + 1
            if len(comp) > len(longest.get(start, "")):
                longest[start] = comp
        for start, comp in longest.items():
            for off in t.compound_splits[comp]:
                points.add(start + off)
    for m in t.suffix_re.finditer(s):
        a = m.start()
        if a >= 2 and _is_letter(s[a - 1]) and _is_letter(s[a - 2]):
            points.add(a + 1)
    if verb_prefixes:
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
    if not points:  # most strings, e.g. every token the NER has not seen: no sort, no generator
        return []
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


# --- Vectorised path -------------------------------------------------------------------------------------------
# The rules above, restated as per-character table look-ups and selections over code-point arrays. Every step of
# the display and match forms maps characters 1:1, deletes them, or keeps chosen ones of a whitespace run, so the
# offset maps are index selections that numpy does in C. The character-loop implementation stays the reference
# (and the path for short strings and for the rare multi-character NFKC expansions); tests check both agree.

_FAST_MIN = 160  # below this many characters numpy's per-call overhead costs more than it saves
_UNICODE_SIZE = 0x110000
_INT_POOL_SIZE = 1 << 16


@dataclass(frozen=True)
class _Arrays:
    display_lut: np.ndarray  # code point -> display code point (1:1 part of the display table)
    display_drop: np.ndarray  # True for characters the display form deletes
    display_expand: np.ndarray  # True for characters that expand to several (handled by the reference path)
    match_lut: np.ndarray  # display code point -> match code point
    match_drop: np.ndarray  # True for marks the match form deletes (checked after the match table)
    ints: tuple[int, ...]  # the ints 0..N-1, sliced into offset maps


@lru_cache(maxsize=1)
def _arrays() -> _Arrays | None:
    """The tables as arrays; ``None`` if a table is not 1:1 (then only the reference path applies)."""
    t = _tables()
    if any(len(v) != 1 for v in (*t.display_table.values(), *t.match_table.values())):
        return None

    def lut(table: dict[int, str]) -> np.ndarray:
        out = np.arange(_UNICODE_SIZE, dtype=np.uint32)
        for k, v in table.items():
            out[k] = ord(v)
        return out

    def mask(chars: frozenset[str] | set[str]) -> np.ndarray:
        out = np.zeros(_UNICODE_SIZE, dtype=bool)
        out[[ord(c) for c in chars]] = True
        return out

    return _Arrays(
        display_lut=lut(t.display_table),
        display_drop=mask(t.display_delete),
        display_expand=mask(set(t.display_expand)),
        match_lut=lut(t.match_table),
        match_drop=mask(t.match_delete_chars),
        ints=tuple(range(_INT_POOL_SIZE)),
    )


def _ws_keep(s: np.ndarray, display: bool) -> np.ndarray | None:
    """Indices of ``s`` that the whitespace pass (``_WS_RE`` with ``_ws_display``/``_ws_match``) keeps.

    ``_WS_RE`` matches every maximal run of spaces/newlines except a lone space between non-blanks, so per run:
    runs touching either end vanish; a run without a newline keeps its first space; a run with newlines keeps its
    first newline (display: also its second). Returns ``None`` when everything is kept.
    """
    sp = s == 32
    nl = s == 10
    ws = sp | nl
    if not ws.any():
        return None
    n = len(s)
    rstart = ws.copy()
    rstart[1:] &= ~ws[:-1]
    rid = np.cumsum(rstart)  # run number, per character
    has_nl = np.zeros(int(rid[-1]) + 1, dtype=bool)
    nlpos = np.flatnonzero(nl)
    has_nl[rid[nlpos]] = True
    keep = ~ws
    keep |= rstart & ~has_nl[rid]
    if len(nlpos):
        r = rid[nlpos]
        first = np.ones(len(r), dtype=bool)
        first[1:] = r[1:] != r[:-1]
        keep[nlpos[first]] = True
        if display and len(r) > 1:
            second = np.zeros(len(r), dtype=bool)
            second[1:] = (r[1:] == r[:-1]) & first[:-1]
            keep[nlpos[second]] = True
    if ws[0]:
        lead = int(np.argmin(ws)) if not ws.all() else n
        keep[:lead] = False
    if ws[-1]:
        trail = int(np.argmin(ws[::-1])) if not ws.all() else n
        keep[n - trail :] = False
    if keep.all():
        return None
    return np.flatnonzero(keep)


_NEWLINES_3 = re.compile(r"\n\n\n+")
_NEWLINES_2 = re.compile(r"\n\n+")


def _ws_select(s: np.ndarray, display: bool) -> tuple[np.ndarray | None, str]:
    """``_ws_keep(s, display)`` and the text of the characters it keeps.

    Most texts have no blank run but blanks at either end (which go) and newline runs (paragraph breaks): a few
    substring tests find that case, where only newlines go.
    """
    text = _decode(s)
    inner = text.strip(" \n")
    if not inner or "  " in inner or " \n" in inner or "\n " in inner:
        k = _ws_keep(s, display)
        return k, (text if k is None else _decode(s[k]))
    n = len(text)
    lead = n - len(text.lstrip(" \n"))
    trail = n - lead - len(inner)
    # A newline run keeps two newlines in the display form, one in the match form.
    run = "\n\n\n" if display else "\n\n"
    if run not in inner:
        if lead == 0 and trail == 0:
            return None, text
        return np.arange(lead, n - trail), inner
    nl = s == 10
    drop = np.zeros(n, dtype=bool)
    if display:
        drop[2:] = nl[2:] & nl[1:-1] & nl[:-2]
        inner = _NEWLINES_3.sub("\n\n", inner)
    else:
        drop[1:] = nl[1:] & nl[:-1]
        inner = _NEWLINES_2.sub("\n", inner)
    drop[:lead] = True
    drop[n - trail :] = True
    return np.flatnonzero(~drop), inner


_Runs = tuple[list[int], list[int]]  # first value and end index of each run of consecutive values


def _runs(values: np.ndarray) -> _Runs | None:
    """``values`` as runs of consecutive ints, or ``None`` when there are too many runs to be worth it."""
    n = len(values)
    cuts = (values[1:] - values[:-1] != 1).nonzero()[0] + 1
    if len(cuts) * 8 > n:
        return None
    return [int(values[0]), *values[cuts].tolist()], [*cuts.tolist(), n]


def _as_tuple(
    values: np.ndarray, tail: int | None = None, runs: _Runs | None = None, shift: int = 0
) -> tuple[int, ...]:
    """``values + shift`` (non-negative ints) as a tuple of Python ints, plus ``tail`` if given.

    Offset maps are long runs of consecutive indices, so they are assembled from slices of one shared tuple of
    ints: per run a C-level copy instead of a new int object per character. ``runs`` may be given when ``values``
    are known to have them (``_runs`` of the unshifted values).
    """
    if len(values) == 0:
        return () if tail is None else (tail,)
    if runs is None:
        runs = _runs(values)
    a = _arrays()
    if runs is not None and a is not None:
        ints = a.ints
        firsts, ends = runs
        last = firsts[-1] + shift + ends[-1] - (ends[-2] if len(ends) > 1 else 0)  # one past the last value
        extend = tail is not None and tail == last  # the tail continues the last run
        if len(firsts) == 1 and (tail is None or extend) and last + extend <= len(ints):
            return ints[firsts[0] + shift : last + extend]
        out: list[int] = []
        prev = 0
        for v, e in zip(firsts, ends, strict=True):
            lo = v + shift
            hi = lo + e - prev
            if hi > len(ints):
                break
            out += ints[lo:hi]
            prev = e
        else:
            if tail is not None:
                out.append(tail)
            return tuple(out)
    out = (values + shift).tolist() if shift else values.tolist()
    if tail is not None:
        out.append(tail)
    return tuple(out)


def _decode(cps: np.ndarray) -> str:
    return cps.astype(np.uint32, copy=False).tobytes().decode("utf-32-le", "surrogatepass")


def _normalize_fast(text: str) -> Normalized | None:
    """:func:`_normalize` on code-point arrays; ``None`` where only the reference path applies."""
    a = _arrays()
    if a is None:
        return None
    c = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    n = len(c)
    if n < 2 or a.display_expand[c].any():
        return None

    # Display form: 1:1 table, deletions, CR LF as one break, whitespace runs.
    s1 = a.display_lut[c]
    drop = a.display_drop[c]
    crlf = (c[1:] == 10) & (c[:-1] == 13)  # crlf[i]: text[i:i + 2] == "\r\n"
    any_crlf = bool(crlf.any())
    if any_crlf:
        drop[1:] |= crlf
    if drop.any():
        dpos = np.flatnonzero(~drop)
        s2 = s1[dpos]
    else:
        dpos = np.arange(n)
        s2 = s1
    dend = dpos + 1
    if any_crlf:
        # The CR of a CR LF pair covers the LF, which has no character of its own.
        after = np.zeros(n, dtype=bool)
        after[:-1] = crlf
        dend += after[dpos]
    k, display = _ws_select(s2, True)
    if k is not None:
        s2, dpos, dend = s2[k], dpos[k], dend[k]
    nd = len(s2)
    if nd == 0:
        return None
    if display == text:
        display = text

    # Match form: 1:1 table, marks deleted (their span joins the letter before), whitespace runs.
    m1 = a.match_lut[s2]
    mdrop = a.match_drop[m1]
    if mdrop.any():
        midx = np.flatnonzero(~mdrop)
        if len(midx) == 0:
            return None
        meidx = np.empty_like(midx)
        meidx[:-1] = midx[1:]
        meidx[-1] = nd
        m2 = m1[midx]
    else:
        midx = np.arange(nd)
        meidx = midx + 1
        m2 = m1
    k, match = _ws_select(m2, False)
    if k is not None:
        m2, midx, meidx = m2[k], midx[k], meidx[k]
    if len(m2) == 0:
        return None
    # Index into display so the Persian-yeh check sees the unfolded letter.
    points = _split_points(
        match,
        lambda i: int(s2[midx[i]]) == 0x06CC,
        not _tables().prefix_needs_persian_yeh or bool((s2 == 0x06CC).any()),
    )
    mstarts = dpos[midx]
    mends = dend[meidx - 1]
    if points:
        pieces, pos = [], 0
        for p in points:
            pieces.append(match[pos:p])
            pos = p
        pieces.append(match[pos:])
        match = " ".join(pieces)
        # An inserted space is an empty span at the source of the character it precedes.
        ins = mstarts[points]
        mstarts = np.insert(mstarts, points, ins)
        mends = np.insert(mends, points, ins)
    # Without CR LF pairs every display character ends where it starts plus one: both maps share their runs.
    display_runs = _runs(dpos)
    return Normalized(
        source=text,
        display=display,
        display_map=_as_tuple(dpos, n, display_runs),
        match=match,
        match_map=_as_tuple(mstarts, n),
        display_ends=_as_tuple(dend) if any_crlf else _as_tuple(dpos, None, display_runs, 1),
        match_ends=_as_tuple(mends),
        display_ends_ordered=_ordered(dend),
        match_ends_ordered=_ordered(mends),
    )


def _ordered(values: np.ndarray) -> bool:
    """True if ``values`` never decrease."""
    return bool((values[1:] >= values[:-1]).all())


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
    result = _normalize_fast(text) if len(text) >= _FAST_MIN else None
    if result is None:
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


_PERSIAN_YEH = "\u06cc"
_TABLE_MIN = 48  # from this length a numpy table look-up beats str.translate with a dict


def _fold_match(d: str) -> str:
    """``d.translate(match_table)``."""
    if len(d) < _TABLE_MIN:
        return d.translate(_tables().match_table)
    a = _arrays()
    if a is None:
        return d.translate(_tables().match_table)
    cp = np.frombuffer(d.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    return _decode(a.match_lut[cp])


@lru_cache(maxsize=65536)
def match_key(text: str) -> str:
    """Match form of a short string (gazetteer keys, cue words); equals ``normalize(text).match``."""
    t = _tables()
    # Fast path without offset maps for the common one-line key; anything unusual takes the full path.
    if "\n" not in text and "\r" not in text and t.display_special_chars.search(text) is None:
        d = text.translate(t.display_table) if t.display_chars.search(text) else text
        if "\n" not in d:
            # Collapsing and stripping spaces changes nothing in a string without one (a single token).
            if " " in d:
                d = " ".join(filter(None, d.split(" ")))
            m = t.match_delete.sub("", _fold_match(d))
            if " " in m:
                m = " ".join(filter(None, m.split(" ")))
            persian_yeh: Callable[[int], bool] | None = None
            has_prefix = t.prefix_re.search(m) is not None
            if not has_prefix:
                persian_yeh = _never
            elif "\n" not in m and _PERSIAN_YEH in d and t.match_keeps_persian_yeh is not None:
                # The verb-prefix rule asks whether a ي was written ی: fold a second time leaving ی as it is. Both
                # folds delete and collapse the same characters, so their positions agree.
                kept = t.match_delete.sub("", d.translate(t.match_keeps_persian_yeh))
                kept = " ".join(filter(None, kept.split(" ")))
                persian_yeh = lambda i: kept[i] == _PERSIAN_YEH  # noqa: E731
            elif "\n" not in m and _PERSIAN_YEH not in d:
                persian_yeh = _never
            if persian_yeh is not None:
                # Without a verb-prefix match anywhere, the verb-prefix rule has nothing to look at.
                points = _split_points(m, persian_yeh, verb_prefixes=has_prefix)
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


def _never(_i: int) -> bool:
    return False


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
