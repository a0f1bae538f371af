"""Quotations and reported speech in Arabic and Persian news: who said what, and through whom.

:func:`extract_quotes` finds

* **direct quotes**: spans inside « », “ ”, „ ” or " marks (nested, reversed and unbalanced marks,
  quotes that run over paragraphs), kept only when they are attributed: a reporting cue before the
  quote (قال مصدر … لرويترز "…", اظهار داشت «نه»), after it ("…"، نقلت الوكالة عن مسؤول …;
  پوتین … را «…» خطاب کرده است), an attribution inside it (… به گفته افسر سوریه ای …), or a reported
  clause that the quote is part of. Names, titles and scare-quoted words are rejected;
* **indirect quotes**: a reporting cue with its speaker and the content clause
  (قال متحدث باسم الكرملين إن …; دمیتری پسکوف … گفت …; به گفته X، …; X … را تکذیب کرد).

Each quote carries its speaker (resolved to an entity id when named, or when a title ties it to a
person named earlier; a described speaker keeps ``entity_id`` None and gets an ``affiliation``) and
``via``, the outlet the speech came through. Cue words and word lists are data files in
``khabar/data/quotes/``; they are folded with :func:`khabar.normalize.match_key` and compiled into
regexes once. All matching runs on the match form of the text; every offset reported indexes the
input text. The quote scanner and all regexes are linear in the input: every context window is
bounded, so pathological input (runs of thousands of quote marks) stays fast.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import Any

import ahocorasick

from khabar.normalize import Normalized, match_key, normalize

__all__ = ["extract_quotes", "quote_id"]

DATA_DIR = Path(__file__).resolve().parent / "data" / "quotes"

_WORD = r"[^\W_]"
_TOKEN_RE = re.compile(r"[^\W_]+")
_BOUNDARY_CHARS = ".!?\n"
_WORD_CHAR_RE = re.compile(_WORD)
_TO_RE = re.compile(r"\s*ل")
_RA_END_RE = re.compile(r"(?<!\w)را\s*\Z")
# Marks that open/close quotes, by family: pairs are only formed inside a family, so «» nests in “”.
_FAMILY = {"«": "g", "»": "g", "“": "c", "”": "c", "„": "c", "‟": "c", '"': "a", "＂": "a"}
_MAX_DEPTH = 6  # deeper nesting is noise; bounding it keeps runs of opening marks linear
_MAX_UNCLOSED = 1500  # an unclosed quote longer than this is not a quote
_MAX_CANDIDATES = 2000
_MAX_MARKS = 20_000
_BACK = 260  # how far back (match-form chars) a reporting cue may stand from its quote
_AHEAD = 160
_SENTENCE_CAP = 700
_CLITIC_PRONOUNS = frozenset({"لنا", "له", "لها", "لهم", "لي", "لك", "لكم", "منه", "عنه", "عنها"})
_RECENT_WINDOW = 1200  # how far back a pronoun or dropped subject looks for its person
_MAX_QUOTE_PARAS = 3  # an unclosed quote may continue over this many unmarked paragraphs
_LOOKAHEAD_MARKS = 40
_PARA_CAP = 1500  # content after "X said:" runs to the paragraph end, at most this far
_NP_BREAK_RE = re.compile(r'[,:;"()\-\n\[\]]')
_NP_BREAK_BUT_QUOTE_RE = re.compile(r"[,:;()\n\[\]]")
_MAX_FIRST_CHARS = 12  # see _word_alt
_MAX_CUES = 1500  # real articles have tens; more is junk, and each costs a bounded amount of work
_VERB_PREFIX = {"ar": (1, "وف"), "fa": (0, "")}  # clitic prefix of a reporting verb: longest, letters


# --------------------------------------------------------------------------------------------
# Resources (data files, compiled once)


@dataclass(frozen=True)
class _Cue:
    stance: str
    order: str  # vso | sov | inherit | naming


@dataclass
class _Lang:
    verbs: dict[str, _Cue]
    verb_re: re.Pattern[str]
    compl_re: re.Pattern[str]
    according_re: re.Pattern[str] | None
    report_via_re: re.Pattern[str] | None
    quote_noun_re: re.Pattern[str] | None
    from_source: tuple[str, ...]
    to_outlet_re: re.Pattern[str] | None
    verb_keys: list[str] = field(default_factory=list)
    according_keys: list[str] = field(default_factory=list)


@dataclass
class _Res:
    langs: dict[str, _Lang]
    roles: dict[str, str]
    adjectives: dict[str, str]
    outlet_heads: frozenset[str]
    outlet_heads_re: re.Pattern[str]
    outlet_anaphora_re: re.Pattern[str]
    unnamed_re: re.Pattern[str]
    naming_before: frozenset[str]
    naming_before_re: re.Pattern[str]
    naming_after_re: re.Pattern[str]
    stops: frozenset[str]
    connectives_re: re.Pattern[str]
    outlets: dict[str, tuple[str, str]]  # match key -> (id, English name)
    outlet_ids: frozenset[str]
    outlets_re: re.Pattern[str]
    affiliations: dict[str, tuple[str, str]]
    affiliations_re: re.Pattern[str]
    bare_negative: frozenset[str]
    pronouns: frozenset[str]
    relatives: frozenset[str]
    according_any_re: re.Pattern[str]
    outlets_keys: list[str] = field(default_factory=list)
    one_of: frozenset[str] = frozenset({"يكي", "احد"})
    of_words: frozenset[str] = frozenset({"از", "من"})
    pronoun_re: re.Pattern[str] = field(default=re.compile(r"(?!)"))
    continuation_re: re.Pattern[str] = field(default=re.compile(r"(?!)"))


def _keys(forms: Iterable[str]) -> list[str]:
    """Folded forms, longest first (the order in which an alternation of them must try them)."""
    return sorted({match_key(f) for f in forms if match_key(f)}, key=len, reverse=True)


def _lit(key: str) -> str:
    """Regex for a folded key: a space also matches a lost half-space."""
    return re.escape(key).replace(r"\ ", " ?")


def _alt(forms: Iterable[str]) -> str:
    """Alternation of folded forms, longest first; a space also matches a lost half-space."""
    return "|".join(map(_lit, _keys(forms))) or "(?!)"


def _split_clitic(forms: Iterable[str]) -> tuple[list[str], list[str]]:
    forms = list(forms)
    clitic = [f[:-2] + "ل" for f in forms if f.endswith(" ل")]
    plain = [f for f in forms if not f.endswith(" ل")]
    return plain, clitic


def _word_alt(branches: Sequence[tuple[list[str], str]], prefix: str = "") -> str:
    """``(?<!W)[prefix]?(?:(?:keys1)tail1|(?:keys2)tail2…)``, written so that ``re`` searches it fast.

    A regex that opens with a lookbehind is tried, alternative by alternative, at every word start.
    This one opens with the first character of each key (and of each prefix), so the engine skips
    to the characters that can start a match and only tries the keys that start with that
    character. Alternatives with different first characters never match at the same place, and
    the keys of one first character keep their order, so every match is the same as the plain
    alternation's: the same spans in the same order of preference (also under ``fullmatch``).
    The lookbehind comes after the first character, one character wider. When the keys start
    with many different letters, most characters of a text start a try and the plain form is
    faster: it is kept then.

    Args:
        branches: ``(keys, tail)``: folded keys in order of preference (:func:`_keys`), and a
            regex that must follow them.
        prefix: characters of an optional one-character prefix (a clitic such as و).
    """
    by_first: dict[str, list[list[str]]] = {}
    for b, (keys, _tail) in enumerate(branches):
        for k in keys:
            by_first.setdefault(k[0], [[] for _ in branches])[b].append(_lit(k[1:]))
    if not by_first:
        return "(?!)"
    if len(by_first) + len(prefix) > _MAX_FIRST_CHARS:
        pre = f"[{re.escape(prefix)}]?" if prefix else ""
        alts = "|".join(f"(?:{'|'.join(map(_lit, keys)) or '(?!)'}){tail}" for keys, tail in branches)
        return rf"(?<!{_WORD}){pre}(?:{alts})"

    def rest(c: str) -> str:
        alts = by_first[c]
        return "|".join(f"(?:{'|'.join(a)}){tail}" for a, (_keys, tail) in zip(alts, branches, strict=True) if a)

    after = rf"(?<!{_WORD}.)"
    bare = "|".join(f"{re.escape(c)}(?:{rest(c)})" for c in by_first)
    firsts = [f"{re.escape(p)}{after}(?:{bare})" for p in prefix]
    firsts += [f"{re.escape(c)}{after}(?:{rest(c)})" for c in by_first]
    return f"(?:{'|'.join(firsts)})"


def _words_re(forms: Iterable[str], prefix: str = "") -> re.Pattern[str]:
    """Whole words (or a clitic ``X ل`` glued to the next word) of ``forms``, after an optional prefix character."""
    plain, clitic = _split_clitic(forms)
    branches = [(_keys(plain), f"(?!{_WORD})")]
    if clitic:
        branches.append((_keys(clitic), ""))
    return re.compile(_word_alt(branches, prefix))


def _words_keys(forms: Iterable[str]) -> list[str]:
    """The literal keys of :func:`_words_re` (for a :class:`_Scanner`)."""
    plain, clitic = _split_clitic(forms)
    return [*_keys(plain), *_keys(clitic)]


def _spellings(key: str) -> list[str]:
    """Every text an alternative built by :func:`_alt` from ``key`` matches: each space is optional."""
    out = [""]
    for k, part in enumerate(key.split(" ")):
        out = [o + part for o in out] if k == 0 else [o + sep + part for o in out for sep in (" ", "")]
    return out


_ScanName = tuple[str, str]  # (what, language)
# A scanned regex, its literal keys, the longest clitic prefix it takes, and the letters that prefix is made of.
_ScanSpec = tuple[re.Pattern[str], Iterable[str], int, str]


class _Scanner:
    """The matches of several word regexes over a whole text, exactly as ``finditer`` finds them.

    These regexes open with a lookbehind, so ``finditer`` tries every alternative at every character
    of an article. An Aho-Corasick pass over their literal keys finds the few places where a match
    can start (at a key, or up to ``max_prefix`` characters before it for a clitic prefix), and the
    regex is tried only there, left to right, as ``finditer`` would. The regexes must never match
    the empty string, and every match must contain a spelling of one of the keys (see
    :func:`_spellings`) after at most ``max_prefix`` characters, all of them ``prefix_chars``: a
    place before a key is only tried when the text there is made of those letters.
    """

    def __init__(self, specs: dict[_ScanName, _ScanSpec]) -> None:
        """Build the automaton.

        Args:
            specs: ``(regex, keys, max_prefix, prefix_chars)`` per name.
        """
        self._names = list(specs)
        self._specs = [(rx, max_prefix, chars) for rx, _keys, max_prefix, chars in specs.values()]
        which: dict[str, set[int]] = {}
        for i, (_rx, keys, _p, _c) in enumerate(specs.values()):
            for key in keys:
                for sp in _spellings(key):
                    which.setdefault(sp, set()).add(i)
        self._auto: Any = None
        if which:
            self._auto = ahocorasick.Automaton()
            for sp, ids in which.items():
                self._auto.add_word(sp, (len(sp) - 1, tuple(sorted(ids))))
            self._auto.make_automaton()

    def scan(self, text: str) -> dict[_ScanName, tuple[list[re.Match[str]], set[int]]]:
        """All matches of each regex in ``text``, and every place where it may match, by name."""
        starts: list[set[int]] = [set() for _ in self._specs]
        if self._auto is not None:
            for end, (back, ids) in self._auto.iter(text):
                for i in ids:
                    starts[i].add(end - back)
        out = []
        for (rx, max_prefix, chars), keys_at in zip(self._specs, starts, strict=True):
            cands = set(keys_at)
            if max_prefix:
                for q in keys_at:
                    # A prefix of k letters holds the prefix of k - 1: stop at the first other letter.
                    for k in range(1, min(max_prefix, q) + 1):
                        if text[q - k] not in chars:
                            break
                        cands.add(q - k)
            found = []
            pos = 0
            for c in sorted(cands):
                if c < pos:
                    continue
                mt = rx.match(text, c)
                if mt is not None:
                    found.append(mt)
                    pos = mt.end()
            out.append((found, cands))
        return dict(zip(self._names, out, strict=True))


def _read_tsv(name: str) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for line in (DATA_DIR / name).read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        form, eid, en = line.split("\t")[:3]
        out[match_key(form)] = (eid.strip(), en.strip())
    return out


@lru_cache(maxsize=1)
def _res() -> _Res:
    cues = json.loads((DATA_DIR / "cues.json").read_text(encoding="utf-8"))
    lex = json.loads((DATA_DIR / "lexicon.json").read_text(encoding="utf-8"))
    langs: dict[str, _Lang] = {}
    for lang in ("ar", "fa"):
        spec = cues[lang]
        verbs: dict[str, _Cue] = {}
        for group in spec["verbs"]:
            for form in group["forms"]:
                # Keyed without spaces: "می گوید", "میگوید" and "می‌گوید" are one cue.
                verbs[match_key(form).replace(" ", "")] = _Cue(group["stance"], group["order"])
        # Arabic verbs take a و/ف conjunction prefix; Persian ones are written apart.
        prefix = f"(?P<pre>[{_VERB_PREFIX[lang][1]}])?" if _VERB_PREFIX[lang][0] else "(?P<pre>)"
        # "گفت و گو" / "گفتگو" (talks) is not the verb "گفت".
        tail = "(?! ?و? ?گو)" if lang == "fa" else ""
        forms = [match_key(f) for g in spec["verbs"] for f in g["forms"]]
        verb_re = re.compile(rf"(?<!{_WORD}){prefix}(?P<cue>{_alt(forms)})(?!{_WORD}){tail}")
        langs[lang] = _Lang(
            verbs=verbs,
            verb_re=verb_re,
            compl_re=_words_re(spec["complementizers"]),
            according_re=_words_re(spec["according_to"], "و") if spec.get("according_to") else None,
            report_via_re=_words_re(cues["report_via"][lang], "و"),
            quote_noun_re=_words_re(spec["quote_noun"]) if spec.get("quote_noun") else None,
            from_source=tuple(match_key(f) for f in spec["from_source"]),
            to_outlet_re=None,
            verb_keys=_keys(forms),
            according_keys=_words_keys(spec["according_to"]) if spec.get("according_to") else [],
        )
    outlets = _read_tsv("outlets.tsv")
    affiliations = _read_tsv("affiliations.tsv")
    res = _Res(
        langs=langs,
        roles={match_key(k): v for k, v in lex["role_heads"].items()},
        adjectives={match_key(k): v for k, v in lex["adjectives"].items()},
        outlet_heads=frozenset(match_key(w) for w in lex["outlet_heads"]),
        outlet_heads_re=_words_re(lex["outlet_heads"]),
        outlet_anaphora_re=_words_re(lex["outlet_anaphora"], "و"),
        unnamed_re=_words_re(lex["unnamed_markers"]),
        naming_before=frozenset(match_key(w) for w in lex["naming_context_before"]),
        naming_before_re=re.compile(_word_alt([(_keys(lex["naming_context_before"]), r"\W*\Z")])),
        naming_after_re=re.compile(rf"\W*(?:{_alt(lex['naming_context_after'])})(?!{_WORD})"),
        stops=frozenset(match_key(w) for w in lex["speaker_stops"]),
        connectives_re=re.compile(rf"(?:\W*(?<!{_WORD})(?:{_alt(lex['leading_connectives'])})(?!{_WORD}))+\W*"),
        outlets=outlets,
        outlet_ids=frozenset(v[0] for v in outlets.values()),
        outlets_re=_words_re(outlets, "لو"),
        affiliations=affiliations,
        affiliations_re=_words_re(affiliations, "لو"),
        bare_negative=frozenset(match_key(w) for w in cues["bare_negative_answers"]),
        pronouns=frozenset(match_key(w) for w in cues["pronoun_subjects"]),
        relatives=frozenset(match_key(w) for w in lex["relative_pronouns"]),
        according_any_re=_words_re(
            [*cues["ar"]["according_to"], *cues["fa"]["according_to"], *cues["report_via"]["ar"],
             *cues["report_via"]["fa"]], "و"),
    )
    res.outlets_keys = _words_keys(outlets)
    res.pronoun_re = _words_re(cues["pronoun_subjects"])
    res.continuation_re = re.compile(_alt(cues["continuation_cues"]))
    return res


_NEVER = re.compile(r"(?!)")


@lru_cache(maxsize=4)
def _scanner(lang_keys: tuple[str, ...]) -> _Scanner:
    """One pass for the whole-text scans, per language: verb cues, "according to", claim triggers; then outlets.

    The claim triggers ride along because :func:`khabar.claims.extract_claims` runs on the same text
    right after (see :func:`whole_text_hits`).
    """
    from khabar.claims import trigger_spec  # claims imports this module

    res = _res()
    specs: dict[_ScanName, _ScanSpec] = {}
    for k in lang_keys:
        lang = res.langs[k]
        specs["verb", k] = (lang.verb_re, lang.verb_keys, *_VERB_PREFIX[k])
        specs["according", k] = (lang.according_re or _NEVER, lang.according_keys, 1, "و")
        specs["trigger", k] = trigger_spec(k)
    specs["outlet", ""] = (res.outlets_re, res.outlets_keys, 1, "لو")
    return _Scanner(specs)


_Hits = dict[_ScanName, tuple[list[re.Match[str]], set[int]]]
_HITS: dict[tuple[str, tuple[str, ...]], _Hits] = {}
_HITS_MAX = 4


def whole_text_hits(m: str, lang_keys: tuple[str, ...]) -> _Hits:
    """The scans of :func:`_scanner` over the match form ``m``, remembered for the last few texts.

    Returns:
        By ``(what, language)``: the matches (as ``finditer`` gives them) and the set of places where
        a ``match`` of the regex may succeed. ``what`` is ``verb``, ``according`` or ``trigger``;
        ``("outlet", "")`` has the outlet names.
    """
    key = (m, lang_keys)
    hit = _HITS.get(key)
    if hit is None:
        hit = _scanner(lang_keys).scan(m)
        if len(_HITS) >= _HITS_MAX:
            _HITS.clear()
        _HITS[key] = hit
    return hit


# --------------------------------------------------------------------------------------------
# Document view: the match form, entity mentions and sentence boundaries in match coordinates


@dataclass(slots=True)
class _Mention:
    start: int  # match-form offsets
    end: int
    entity: dict[str, Any]
    type: str  # upper case
    id: str


@dataclass
class _Doc:
    text: str
    norm: Normalized
    m: str
    langs: list[_Lang]
    mentions: list[_Mention]
    mention_starts: list[int]
    boundaries: list[int]  # match-form positions of sentence ends outside quotes
    excluded: list[tuple[int, int]]
    last_outlet: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    cue_index: list[tuple[re.Match[str], _Cue]] | None = None
    cue_index_starts: list[int] = field(default_factory=list)
    quote_inner: bytearray = field(default_factory=bytearray)  # 1 inside a closed quote (match form)
    # Whole-text matches, per language of ``langs``: reporting verbs and "according to"; outlet names.
    verb_hits: list[list[re.Match[str]]] = field(default_factory=list)
    verb_cands: list[set[int]] = field(default_factory=list)  # every place where a verb_re.match may succeed
    any_verb_cand: set[int] | frozenset[int] = frozenset()  # the union of verb_cands
    from_re: re.Pattern[str] = _NEVER  # "عن" / "از قول" of the document's languages
    according_hits: list[list[re.Match[str]]] = field(default_factory=list)
    outlet_hits: list[re.Match[str]] = field(default_factory=list)

    def in_quote(self, p: int) -> bool:
        return 0 <= p < len(self.quote_inner) and bool(self.quote_inner[p])

    def src(self, s: int, e: int) -> tuple[int, int]:
        return self.norm.to_source(s, e, "match")

    def to_m(self, p: int) -> int:
        return bisect_left(self.norm.match_map, p, 0, len(self.m))

    # Sentences are capped at _SENTENCE_CAP characters either side of a position, so that every
    # context window is bounded and the whole extraction stays linear on text without full stops.
    def sent_start(self, p: int) -> int:
        i = bisect_right(self.boundaries, p - 1) - 1
        return max(self.boundaries[i] + 1 if i >= 0 else 0, p - _SENTENCE_CAP)

    def sent_end(self, p: int) -> int:
        i = bisect_left(self.boundaries, p)
        return min(self.boundaries[i] if i < len(self.boundaries) else len(self.m), p + _SENTENCE_CAP)

    def mentions_in(self, s: int, e: int) -> list[_Mention]:
        starts = self.mention_starts
        i = bisect_left(starts, s)
        j = bisect_left(starts, e, i)
        if i >= j:  # the usual case: no mention starts in the window
            return []
        return [x for x in self.mentions[i:j] if x.end <= e]

    def is_excluded(self, s: int, e: int) -> bool:
        return any(a <= s and e <= b for a, b in self.excluded)


def _build_doc(
    text: str, language: str, entities: Sequence[dict], exclude: Sequence[tuple[int, int]]
) -> _Doc:
    res = _res()
    norm = normalize(text)
    m = norm.match
    lang_keys = [language] if language in res.langs else ["ar", "fa"]
    doc = _Doc(text, norm, m, [res.langs[k] for k in lang_keys], [], [], [], [])
    mmap, n_m = norm.match_map, len(m)
    # Sorted by (start, -end), ties in input order: the running count keeps the dicts out of the comparison.
    found: list[tuple[int, int, int, dict[str, Any], str, str]] = []
    for ent in entities or ():
        mentions = ent.get("mentions", ()) or ()
        if not mentions:
            continue
        etype, eid = str(ent.get("type", "")).upper(), str(ent.get("id"))
        for men in mentions:
            s, e = bisect_left(mmap, int(men["start"]), 0, n_m), bisect_left(mmap, int(men["end"]), 0, n_m)
            if e > s:
                found.append((s, -e, len(found), ent, etype, eid))
    found.sort()
    doc.mentions = [_Mention(s, -ne, ent, etype, eid) for s, ne, _k, ent, etype, eid in found]
    doc.mention_starts = [x.start for x in doc.mentions]
    doc.excluded = [(doc.to_m(a), doc.to_m(b)) for a, b in exclude]
    hits = whole_text_hits(m, tuple(lang_keys))
    doc.verb_hits = [hits["verb", k][0] for k in lang_keys]
    doc.verb_cands = [hits["verb", k][1] for k in lang_keys]
    doc.any_verb_cand = doc.verb_cands[0] if len(lang_keys) == 1 else set().union(*doc.verb_cands)
    doc.from_re = _from_re(tuple(w for lang in doc.langs for w in lang.from_source))
    doc.according_hits = [hits["according", k][0] for k in lang_keys]
    doc.outlet_hits = hits["outlet", ""][0]
    return doc


# --------------------------------------------------------------------------------------------
# Quote-mark pairing


def _side(text: str, p: int) -> str:
    ch = text[p]
    if ch == "«":
        return "open"
    if ch == "»":
        return "close"
    prev = text[p - 1] if p > 0 else " "
    nxt = text[p + 1] if p + 1 < len(text) else " "
    prev_word = prev.isalnum() or prev in ".,،!?؟)]%"
    next_word = nxt.isalnum() or nxt in "([«"
    if next_word and not prev_word:
        return "open"
    if prev_word and not next_word:
        return "close"
    return "either"


def _pair_marks(doc: _Doc) -> list[tuple[int, int, bool]]:
    """Pair quote marks; return ``(open, close, closed)`` in match-form offsets.

    ``close`` is the closing mark's position, or the paragraph end for an unclosed quote. An
    unclosed quote continues over a paragraph break when the next paragraph closes it before
    opening another, or reopens it at its first character (the newspaper convention).
    """
    m, text, mmap = doc.m, doc.text, doc.norm.match_map
    marks: list[tuple[int, str, str]] = []  # (pos, family, side)
    n_quotes = 0
    for i in _char_positions(m, '"\n'):
        if m[i] == "\n":
            marks.append((i, "\n", ""))
            continue
        fam = _FAMILY.get(text[mmap[i]])
        if fam:
            marks.append((i, fam, _side(text, mmap[i])))
            n_quotes += 1
            if n_quotes >= _MAX_MARKS:  # no article has this many; the rest is not looked at
                break
    out: list[tuple[int, int, bool]] = []
    stack: list[tuple[int, str]] = []
    skip: set[int] = set()
    for k, (pos, fam, side) in enumerate(marks):
        if fam == "\n":
            if not stack:
                continue
            # What does the next paragraph do with the family of the innermost open quote?
            top_fam = stack[-1][1]
            keep = False
            # A quote may run over a few paragraphs with no mark at all before it closes.
            para_start, paras = pos + 1, 0
            for pos2, fam2, side2 in marks[k + 1 : k + 1 + _LOOKAHEAD_MARKS]:
                if fam2 == "\n":
                    if m[para_start:pos2].strip():
                        paras += 1
                    para_start = pos2 + 1
                    if paras >= _MAX_QUOTE_PARAS or pos2 - pos > _MAX_UNCLOSED:
                        break
                    continue
                if fam2 != top_fam:
                    continue
                if side2 != "close" and m[para_start:pos2].strip() == "":
                    keep = True
                    skip.add(pos2)
                elif side2 == "close":
                    keep = True
                break
            if not keep:
                for o, _f in stack:
                    out.append((o, pos, False))
                stack.clear()
            continue
        if pos in skip:
            continue
        if side == "either":
            side = "close" if any(f == fam for _, f in stack[-2:]) else "open"
        if side == "close":
            for j in range(len(stack) - 1, max(len(stack) - 3, -1), -1):
                if stack[j][1] == fam:
                    for o, _f in stack[j + 1 :]:
                        out.append((o, pos, False))
                    out.append((stack[j][0], pos, True))
                    del stack[j:]
                    break
        else:
            stack.append((pos, fam))
            if len(stack) > _MAX_DEPTH:
                del stack[0]
    for o, _f in stack:
        out.append((o, len(m), False))
    spans = []
    for o, c, closed in out:
        if not closed and c - o > _MAX_UNCLOSED:
            continue
        if _WORD_CHAR_RE.search(m, o + 1, c) is None:  # [^\W_] is exactly str.isalnum
            continue
        spans.append((o, c, closed))
        if len(spans) >= _MAX_CANDIDATES:
            break
    spans.sort()
    return spans


def _boundaries(m: str, spans: list[tuple[int, int, bool]]) -> list[int]:
    """Sentence ends: . ! ? and line breaks, except full stops inside closed quotes."""
    inside = bytearray(len(m) + 1)
    for o, c, closed in spans:
        if closed:
            inside[o + 1 : c] = b"\x01" * (c - o - 1)
    last = len(m) - 1
    # Kept: line breaks, and the rest outside quotes unless a decimal point.
    return [i for i in _char_positions(m, _BOUNDARY_CHARS) if m[i] == "\n" or not (
        inside[i] or (m[i] == "." and 0 < i < last and m[i - 1].isdigit() and m[i + 1].isdigit()))]


def _char_positions(s: str, chars: str) -> list[int]:
    """Sorted positions of ``chars`` in ``s``: str.find runs much faster than a regex character class."""
    out: list[int] = []
    for ch in chars:
        i = s.find(ch)
        while i >= 0:
            out.append(i)
            i = s.find(ch, i + 1)
    out.sort()
    return out


# --------------------------------------------------------------------------------------------
# Noun phrases and speakers


def _tokens(m: str, s: int, e: int) -> list[tuple[str, int, int]]:
    return [(t.group(), t.start(), t.end()) for t in _TOKEN_RE.finditer(m, s, e)]


def _strip_connectives(m: str, s: int, e: int) -> int:
    mt = _res().connectives_re.match(m, s, e)
    return mt.end() if mt else s


def _np_forward(doc: _Doc, s: int, e: int, max_tokens: int = 9) -> tuple[int, int] | None:
    """The noun phrase starting at ``s``: up to a stop word, a comma, a colon, a quote or a cue."""
    res = _res()
    m = doc.m
    s = _strip_connectives(m, s, e)
    while s < e and m[s] == " ":
        s += 1
    end = s
    n = 0
    pos = s
    skip_to = -1
    first = ""
    cue_cands = doc.any_verb_cand
    for mt in _TOKEN_RE.finditer(m, s, e):
        if mt.start() < skip_to:
            end = pos = mt.end()
            continue
        gap = m[pos : mt.start()]
        if gap != " ":  # the usual gap; the checks below are for punctuation
            if not n and '"' in gap:
                return None
            if n and '"' in gap and not _NP_BREAK_BUT_QUOTE_RE.search(gap):
                # A short quoted name inside the phrase: وكالة “فارس” شبه الرسمية.
                close = m.find('"', mt.start(), min(e, mt.start() + 40))
                if close > 0 and _word_count(m, 4, mt.start(), close) <= 3:
                    skip_to = close
                    end = pos = mt.end()
                    continue
            if n and _NP_BREAK_RE.search(gap):
                break
        tok = mt.group()
        if tok == "ل":  # "قال المسؤول لـ«الشرق الأوسط»": a lone clitic preposition opens an addressee
            if not n:
                return None
            break
        if n == 1 and first in res.one_of and tok in res.of_words:
            end = pos = mt.end()
            continue
        if n and (tok in res.stops or (mt.start() in cue_cands and _is_cue_token(doc, mt.start()))):
            break
        if n and tok.startswith("ل") and _outlet_at(doc, mt.start() + 1, mt.end()):
            break
        if not n and tok in res.stops and tok not in res.roles:
            return None
        end = mt.end()
        pos = mt.end()
        if not n:
            first = tok
        n += 1
        if n >= max_tokens:
            break
    # A mention that the token walk cut in two still belongs to the phrase.
    for men in doc.mentions_in(s, min(e, end + 40)):
        if men.start < end < men.end:
            end = men.end
    # A named speaker ends the phrase: "الجنرال جوزيف دانفورد، …", "کرملین دیدار … را".
    mens = [x for x in doc.mentions_in(s, end) if x.type in ("PER", "ORG", "LOC", "GPE")]
    pers = [x for x in mens if x.type == "PER"]
    if mens and mens[0].start == s:
        end = mens[0].end
    elif pers:
        end = pers[0].end
    elif mens and first in res.outlet_heads:
        end = mens[0].end
        if m[end : end + 1] == '"':
            end += 1
    return (s, end) if end > s else None


def _np_backward_subject(doc: _Doc, s: int, e: int, adjacent: bool = False, retry: bool = False
                         ) -> tuple[int, int] | None:
    """Subject of the verb at ``e`` in the clause ``[s, e)``.

    Persian (SOV) puts the subject at the clause start, after adverbials such as "ماه گذشته،" or
    "به گفته X،", and objects may stand between it and the verb. Arabic SVO (``adjacent``) puts it
    right before the verb, or before a relative pronoun (مصادر … التي أكدت).
    """
    res = _res()
    m = doc.m
    if adjacent:
        seg = s
        for ch in ',:"\n.':
            seg = max(seg, m.rfind(ch, s, e) + 1)
        toks = _tokens(m, seg, e)
        if toks and toks[-1][0] in res.relatives:
            heads = [t for t in _tokens(m, doc.sent_start(e), toks[-1][1]) if t[0] in res.roles]
            if heads:
                np = _np_forward(doc, heads[-1][1], toks[-1][1])
                return np if np else None
        seg = _strip_connectives(m, seg, e)
        if not toks or _TOKEN_RE.search(m, seg, e) is None:
            return None
        np = _np_forward(doc, seg, e)
        if np and _has_speaker_head(doc, *np):
            rest = _tokens(m, np[1], e)
            if len(rest) <= 1 or (rest[0][0] in res.relatives and len(rest) <= 6):
                return np
        return None
    s = _strip_connectives(m, s, e)
    for _ in range(6):
        comma = m.find(",", s, e)
        head = _TOKEN_RE.search(m, s, e)
        if head is None:
            break
        adverbial = (head.group() in res.stops and head.group() not in res.roles) or bool(
            res.according_any_re.match(m, head.start()))
        if comma < 0 or not (adverbial or not _has_speaker_head(doc, s, comma)):
            break
        s = _strip_connectives(m, comma + 1, e)
    # Leading time words without a comma: "روز چهارشنبه کرملین …".
    for _ in range(4):
        head = _TOKEN_RE.search(m, s, e)
        weekday = head is not None and m.startswith(" شنبه", head.end())  # "چهار شنبه" after splitting
        if head is None or (head.group() not in res.stops and not weekday) or _is_role(head.group()) or \
                doc.mentions_in(head.start(), head.end()):
            break
        if head.group() in res.of_words or head.group() in ("به", "با", "در", "که", "را"):
            break
        s = head.end()
    np = _np_forward(doc, s, e) if s < e else None
    if np and _has_speaker_head(doc, *np):
        return np
    ss = doc.sent_start(e)
    if s > ss and not retry:
        return _np_backward_subject(doc, ss, e, retry=True)
    # "واشینگتن می گوید …": a short phrase right before the verb is its subject.
    if np and _word_count(m, 3, np[0], e) <= 2 and np[1] >= e - 2:
        return np
    return None


def _is_role(tok: str) -> bool:
    roles = _res().roles
    return tok in roles or (tok.startswith("ال") and tok[2:] in roles)


def _has_speaker_head(doc: _Doc, s: int, e: int) -> bool:
    res = _res()
    if s >= e:
        return False
    for men in doc.mentions_in(s, e):
        if men.type in ("PER", "ORG", "LOC", "GPE", "NORP"):
            return True
    for tok in _TOKEN_RE.findall(doc.m, s, e)[:4]:
        if _is_role(tok) or tok in res.outlet_heads or tok in res.pronouns:
            return True
    return bool(
        res.outlets_re.search(doc.m, s, e)
        or res.affiliations_re.search(doc.m, s, e)
        or res.outlet_anaphora_re.search(doc.m, s, e)
    )


def _is_cue_token(doc: _Doc, p: int) -> bool:
    if p not in doc.any_verb_cand:  # most tokens: no verb cue can start there
        return False
    return any(p in cands and lang.verb_re.match(doc.m, p) for lang, cands in zip(doc.langs, doc.verb_cands,
                                                                                   strict=True))


def _outlet_at(doc: _Doc, s: int, e: int) -> bool:
    res = _res()
    if doc.m[s:e] in res.outlets:
        return True
    return any(men.id in res.outlet_ids and men.start <= s + 1 for men in doc.mentions_in(s, e + 30))


def _gloss(doc: _Doc, s: int, e: int, affiliation: tuple[str, str] | None) -> str:
    """An English name for a described speaker: role + adjectives in English order."""
    res = _res()
    toks = _TOKEN_RE.findall(doc.m, s, e)
    one = match_key("یکی")
    head = next((res.roles.get(t) or res.roles[t[2:]] for t in toks if _is_role(t) and t != one), None)
    adjs = [res.adjectives[t] for t in toks if t in res.adjectives]
    if head is None:
        return doc.text[slice(*doc.src(s, e))]
    words = [*reversed(adjs)]
    if affiliation:
        words.append(affiliation[1])
    words.append(head)
    return " ".join(dict.fromkeys(words))


def _entity_name(ent: dict[str, Any]) -> str:
    names = ent.get("names") or {}
    return str(names.get("en") or ent.get("name") or ent.get("id"))


def _affiliation(doc: _Doc, s: int, e: int) -> tuple[str, str] | None:
    res = _res()
    for men in doc.mentions_in(s, e):
        if men.type == "ORG":
            return men.id, _entity_name(men.entity)
    mt = res.affiliations_re.search(doc.m, s, e)
    if mt:
        key = mt.group().lstrip("لو") if mt.group() not in res.affiliations else mt.group()
        return res.affiliations.get(key) or res.affiliations.get(mt.group())
    return None


@lru_cache(maxsize=1024)
def _title_re(stems: tuple[str, ...]) -> re.Pattern[str]:
    r"""``(?<!\w)stem1\w*\W+stem2\w*…``, written to open with the first stem, which re then finds fast.

    The lookbehind after the stem is one character wider than the stem: the same condition on the
    character before it (a stem has no line break for the dot to miss).
    """
    parts = [re.escape(k) + r"\w*" for k in stems]
    if stems[0]:
        parts[0] = re.escape(stems[0]) + rf"(?<!\w.{{{len(stems[0])}}})\w*"
    else:
        parts[0] = r"(?<!\w)\w*"
    return re.compile(r"\W+".join(parts))


def _is_word_char(ch: str) -> bool:
    r"""``re.match(r"\w", ch)`` for one character: ``\w`` is exactly str.isalnum and the underscore."""
    return ch.isalnum() or ch == "_"


def _title_spans(m: str, stems: tuple[str, ...], endpos: int) -> Iterator[tuple[int, int]]:
    r"""The spans of ``_title_re(stems).finditer(m, 0, endpos)``, without compiling a regex per title.

    Every title is new, so the regex was compiled for nearly every call. When no stem is empty the
    regex never needs to backtrack: a stem starts with a word character, so each ``\w*`` must take
    the whole run of word characters and each ``\W+`` the whole run of others. Walking the text
    that way from each place where the first stem occurs finds the same matches (empty stems fall
    back to the regex).
    """
    if not all(stems):
        for mt in _title_re(stems).finditer(m, 0, endpos):
            yield mt.span()
        return
    first, rest = stems[0], stems[1:]
    p = m.find(first, 0, endpos)
    while p >= 0:
        end = _title_end(m, p, first, rest, endpos)
        if end < 0:
            p = m.find(first, p + 1, endpos)
        else:
            yield p, end
            p = m.find(first, end, endpos)


def _title_end(m: str, p: int, first: str, rest: tuple[str, ...], endpos: int) -> int:
    """End of the title match starting at ``p`` (where ``first`` occurs), or -1 (see :func:`_title_spans`)."""
    if p > 0 and _is_word_char(m[p - 1]):
        return -1
    i = p + len(first)
    while i < endpos and _is_word_char(m[i]):
        i += 1
    for stem in rest:
        j = i
        while j < endpos and not _is_word_char(m[j]):
            j += 1
        if j == i or j + len(stem) > endpos or not m.startswith(stem, j):
            return -1
        i = j + len(stem)
        while i < endpos and _is_word_char(m[i]):
            i += 1
    return i


def _title_coref(doc: _Doc, s: int, e: int) -> _Mention | None:
    """A person named earlier next to the same title (نائب وزير الخارجية … حسين أمير عبد اللهيان)."""
    res = _res()
    toks = _TOKEN_RE.findall(doc.m, s, e)
    if len(toks) < 2 or toks[0] not in res.roles:
        return None
    stems = tuple(t[:-1] for t in toks[:3])
    # Most titles are not repeated earlier: a stem missing there rules out a match without a regex.
    if any(st and doc.m.find(st, 0, s) < 0 for st in stems):
        return None
    for mt_start, mt_end in _title_spans(doc.m, stems, s):
        after = doc.mentions_in(mt_end, mt_end + 60)
        per = next((x for x in after if x.type == "PER"), None)
        if per:
            return per
        before = [x for x in doc.mentions_in(max(0, mt_start - 60), mt_start) if x.type == "PER"]
        if before and doc.m[before[-1].end : mt_start].strip(" ,") == "":
            return before[-1]
    return None


def _speaker(doc: _Doc, s: int, e: int) -> dict[str, Any] | None:
    """Resolve the noun phrase ``[s, e)`` to a speaker dict (offsets into the input text)."""
    res = _res()
    m = doc.m
    while s < e and not m[s].isalnum():
        s += 1
    while e > s and not m[e - 1].isalnum():
        e -= 1
    if s >= e:
        return None
    first_tok = _TOKEN_RE.search(m, s, e)
    first = first_tok.group() if first_tok else ""
    described = _is_role(first) or first in res.outlet_heads
    mens = doc.mentions_in(s, e)
    pers = [x for x in mens if x.type == "PER"]
    ent: _Mention | None = None
    if pers:
        ent = pers[0]
    elif first in res.outlet_heads:
        ent = next((x for x in mens if x.type == "ORG"), None)
    elif not described:
        # A place names the speaker only when it heads the phrase ("ایران اعلام کرد"); in
        # "شرکت ملی نفت لیبی" or "أمير الكويت" it is a modifier of an unknown head.
        ent = next((x for x in mens if x.type == "ORG"), None) or next(
            (x for x in mens if x.type in ("LOC", "GPE") and x.start <= s), None
        )
    if ent is None and described and _is_role(first):
        ent = _title_coref(doc, s, e)
        if ent is not None:
            a, b = doc.src(s, e)
            return {"text": doc.text[a:b], "start": a, "end": b, "entity_id": ent.id,
                    "name": _entity_name(ent.entity), "affiliation": None}
    a, b = doc.src(s, e)
    out: dict[str, Any] = {"text": doc.text[a:b], "start": a, "end": b, "entity_id": None, "name": None,
                           "affiliation": None}
    if ent is not None:
        out["entity_id"] = ent.id
        out["name"] = _entity_name(ent.entity)
        if ent.type == "PER" or first in res.outlet_heads or not described:
            return out
    outlet = _outlet_lookup(doc, s, e)
    if outlet and ent is None:
        out["entity_id"], out["name"] = outlet
        return out
    aff = _affiliation(doc, s, e)
    out["entity_id"] = None
    out["affiliation"] = aff[0] if aff else None
    out["name"] = _gloss(doc, s, e, aff)
    return out


def _outlet_lookup(doc: _Doc, s: int, e: int) -> tuple[str, str] | None:
    res = _res()
    for men in doc.mentions_in(s, e):
        if men.id in res.outlet_ids or (men.type == "ORG" and _head_is_outlet(doc, s, men.start)):
            return men.id, _entity_name(men.entity)
    mt = res.outlets_re.search(doc.m, s, e)
    if mt:
        key = mt.group()
        if key not in res.outlets:
            key = key[1:]
        if key in res.outlets:
            return res.outlets[key]
    return None


def _head_is_outlet(doc: _Doc, s: int, e: int) -> bool:
    heads = _res().outlet_heads
    return any(t in heads for t in _TOKEN_RE.findall(doc.m, s, e))


def _is_outlet(doc: _Doc, s: int, e: int) -> bool:
    return bool(_outlet_lookup(doc, s, e)) or _head_is_outlet(doc, s, min(e, s + 20)) or bool(
        _res().outlet_anaphora_re.match(doc.m, s, e)
    )


def _via(doc: _Doc, s: int, e: int) -> dict[str, Any] | None:
    """An outlet reference in ``[s, e)`` (رويترز, خبرگزاری تاس, الوكالة -> the last outlet named)."""
    res = _res()
    ana = res.outlet_anaphora_re.search(doc.m, s, e)
    found = _outlet_lookup(doc, s, e)
    a, b = doc.src(s, e)
    if found:
        return {"text": doc.text[a:b], "start": a, "end": b, "entity_id": found[0], "name": found[1]}
    if ana:
        prev = [v for p, v in doc.last_outlet if p < s]
        if prev:
            return {**prev[-1], "text": doc.text[a:b], "start": a, "end": b}
    if _head_is_outlet(doc, s, e):
        return {"text": doc.text[a:b], "start": a, "end": b, "entity_id": None, "name": None}
    return None


def _note_outlets(doc: _Doc) -> None:
    """Remember where outlets are named, so 'the agency' can refer back to the last one."""
    res = _res()
    found: list[tuple[int, dict[str, Any]]] = []
    for men in doc.mentions:
        if men.id in res.outlet_ids:
            found.append((men.start, {"entity_id": men.id, "name": _entity_name(men.entity)}))
    for mt in doc.outlet_hits:
        key = mt.group() if mt.group() in res.outlets else mt.group()[1:]
        if key in res.outlets:
            eid, name = res.outlets[key]
            found.append((mt.start(), {"entity_id": eid, "name": name}))
    found.sort(key=lambda x: x[0])
    doc.last_outlet = found


# --------------------------------------------------------------------------------------------
# Reporting clauses


@dataclass
class _Attr:
    speaker: dict[str, Any] | None
    via: dict[str, Any] | None
    cue: str | None
    cue_span: tuple[int, int] | None  # match-form
    stance: str
    content_start: int = -1  # match-form start of the reported clause (after the complementizer)


def _find_cues(doc: _Doc, s: int, e: int) -> list[tuple[re.Match[str], _Cue]]:
    """Reporting cues starting in ``[s, e)`` (found once per document, then sliced)."""
    if doc.cue_index is None:
        found = []
        for lang, hits in zip(doc.langs, doc.verb_hits, strict=True):
            for mt in hits:
                cue = lang.verbs.get(mt.group("cue").replace(" ", ""))
                if cue:
                    found.append((mt, cue))
                    if len(found) >= _MAX_CUES:
                        break
        found.sort(key=lambda x: x[0].start())
        doc.cue_index = found
        doc.cue_index_starts = [x[0].start() for x in found]
    lo = bisect_left(doc.cue_index_starts, s)
    hi = bisect_left(doc.cue_index_starts, e)
    return doc.cue_index[lo:hi]


def _source_chain(doc: _Doc, s: int, e: int) -> tuple[tuple[int, int] | None, list[tuple[int, int]]]:
    """Split ``عن X، عن Y`` / ``از قول X`` in ``[s, e)``: (last non-anonymous source NP, outlet NPs)."""
    res = _res()
    m = doc.m
    sources: list[tuple[int, int]] = []
    for mt in doc.from_re.finditer(m, s, e):
        np = _np_forward(doc, mt.end(), e)
        if np:
            # An unnamed-source marker right after the phrase makes it anonymous.
            tail_end = min(e, np[1] + 30)
            if res.unnamed_re.search(m, np[0], tail_end) and not doc.mentions_in(np[0], np[1]):
                continue
            sources.append(np)
    if not sources:
        return None, []
    is_outlet = [_is_outlet(doc, *x) for x in sources]
    outlets = [x for x, o in zip(sources, is_outlet, strict=True) if o]
    people = [x for x, o in zip(sources, is_outlet, strict=True) if not o]
    return (people[-1] if people else None), outlets


@lru_cache(maxsize=4)
def _from_re(forms: tuple[str, ...]) -> re.Pattern[str]:
    return _words_re(forms)


def _clause_start(doc: _Doc, p: int) -> int:
    """Start of the clause that ends at ``p``: the sentence start or the last complementizer."""
    ss = doc.sent_start(p)
    start = ss
    for lang in doc.langs:
        for mt in lang.compl_re.finditer(doc.m, ss, p):
            start = max(start, mt.end())
    return start


def _colon_after(doc: _Doc, mt: re.Match[str], attr: _Attr) -> int:
    """Position of the colon that introduces what was said right after the cue (and its speaker)."""
    m = doc.m
    p = mt.end()
    if attr.content_start > p:
        return -1  # "قال إن …": a complementizer, not a colon, opens the content
    sp = attr.speaker
    if sp is not None and sp.get("end") is not None:
        sp_end = doc.to_m(sp["end"])
        if p <= sp_end <= p + 200:
            p = sp_end  # Arabic VSO: "وقال المتحدث باسم الوزارة: …"
    k = m.find(":", p, min(len(m), p + 80))
    if k < 0:
        return -1
    gap = m[p:k]
    if any(ch in gap for ch in '."\n') or _word_count(gap, 7) > 6:
        return -1
    if any(lang.compl_re.search(m, p, k) for lang in doc.langs):
        return -1
    return k


def _para_end(doc: _Doc, p: int) -> int:
    """End of the paragraph holding ``p``, capped; a quote mark that opens there ends it earlier."""
    m = doc.m
    nl = m.find("\n", p, p + _PARA_CAP)
    return nl if nl >= 0 else min(len(m), p + _PARA_CAP)


def _bare_name_before_content(doc: _Doc, s: int, e: int) -> bool:
    """A short phrase of unknown words directly followed by a quote, a colon or "أن"/"إن"."""
    res = _res()
    toks = _TOKEN_RE.findall(doc.m, s, e)
    if not 1 <= len(toks) <= 3 or any(t in res.stops or t in res.pronouns or t in _CLITIC_PRONOUNS
                                       for t in toks):
        return False
    rest = doc.m[e : e + 12].lstrip(" ,")
    if rest[:1] in (":", '"'):
        return True
    return any(lang.compl_re.match(doc.m, e + (len(doc.m[e : e + 12]) - len(doc.m[e : e + 12].lstrip())))
               for lang in doc.langs)


def _no_subject_after(doc: _Doc, p: int) -> bool:
    """Whether no noun follows the verb ending at ``p`` (a complementizer, colon, quote or preposition)."""
    m = doc.m
    rest = m[p : p + 3].lstrip()
    if not rest or rest[0] in ':",\n.':
        return True
    tok = _TOKEN_RE.match(m, p + (len(m[p : p + 3]) - len(m[p : p + 3].lstrip())))
    return tok is None or tok.group() in _res().stops or any(lang.compl_re.match(m, tok.start())
                                                              for lang in doc.langs)


def _clause_initial(doc: _Doc, p: int) -> bool:
    """Whether only connectives (و, كما, من جهته …) stand between the clause start and ``p``."""
    m = doc.m
    s = doc.sent_start(p)
    s = max(s, m.rfind(",", s, p) + 1, m.rfind(":", s, p) + 1)
    return _strip_connectives(m, s, p) >= p - 1 or _TOKEN_RE.search(m, s, p) is None


def _recent_subject(doc: _Doc, p: int, since: int) -> _Mention | None:
    """The last person who opens a sentence between ``since`` and the sentence of ``p``.

    "وقام كارتر بزيارة … . وقال إن «…»" / "اما محمد که … . وی گفت: …": the pronoun or dropped
    subject refers to the person the text was just about, not necessarily to the last speaker.
    """
    m = doc.m
    p = doc.sent_start(p)
    lo = max(since, p - _RECENT_WINDOW)
    cands = [x for x in doc.mentions_in(lo, p) if x.type == "PER" and not doc.in_quote(x.start)]
    for men in reversed(cands):
        ss = doc.sent_start(men.start)
        s = _strip_connectives(m, ss, men.start)
        if _word_count(m, 2, s, men.start) <= 1:
            return men
    return None


def _implicit_speaker(doc: _Doc, p: int, last_speaker: dict | None, continuing: bool) -> dict | None:
    """Who speaks when the subject is a pronoun or dropped: the last speaker, or a nearer subject."""
    if continuing and last_speaker is not None:
        return dict(last_speaker)
    since = doc.to_m(last_speaker["end"]) if last_speaker is not None else 0
    men = _recent_subject(doc, p, since)
    if men is not None and (last_speaker is None or men.id != last_speaker.get("entity_id")):
        return _speaker(doc, men.start, men.end)
    return dict(last_speaker) if last_speaker is not None else None


def _attribute_cue(
    doc: _Doc, mt: re.Match[str], cue: _Cue, prev: _Attr | None, last_speaker: dict | None
) -> _Attr:
    """Speaker, via and content start for one reporting cue."""
    m = doc.m
    cs, ce = mt.start("cue"), mt.end("cue")
    se = doc.sent_end(ce)
    clause = _clause_start(doc, mt.start())
    speaker_np: tuple[int, int] | None = None
    via: dict[str, Any] | None = None
    # Where the content clause starts: after a complementizer that follows the cue.
    content = ce
    compl = None
    for lang in doc.langs:
        c = lang.compl_re.search(m, ce, min(se, ce + 200))
        if c and (compl is None or c.start() < compl.start()):
            compl = c
    if compl is not None and cue.order != "vso" and not _immediate_gap(m, ce, compl.start()):
        compl = None  # Persian که belongs to the verb only right after it
    region_end = compl.start() if compl else se
    nxt = [x for x in _find_cues(doc, ce, region_end)]
    if nxt:
        region_end = min(region_end, nxt[0][0].start())
    if compl and compl.start() <= region_end:
        content = compl.end()
    if cue.order == "vso":
        after = _np_forward(doc, ce, region_end)
        prev_tok = _TOKEN_RE.findall(m, max(0, mt.start() - 12), mt.start())
        if prev_tok and prev_tok[-1] in _res().relatives:
            after = None
        if after and _has_speaker_head(doc, *after) and m[ce:after[0]].strip() == "":
            first = _TOKEN_RE.search(m, after[0])
            if first and first.group() not in _res().stops:
                speaker_np = after
        elif after and m[ce:after[0]].strip() == "" and _clause_initial(doc, mt.start()) and \
                _bare_name_before_content(doc, *after):
            # A name the entity step did not know, right between the verb and what was said:
            # "وقالت برادي "…"", "وأضاف وارنر: …".
            speaker_np = after
        if speaker_np is None:
            speaker_np = _np_backward_subject(doc, clause, mt.start(), adjacent=True)
            if speaker_np is None:
                # "وكان موقع … الأمريكية، نقل عن" : the subject stands before a comma.
                ss = doc.sent_start(mt.start())
                last_comma = m.rfind(",", ss, mt.start())
                if last_comma > 0 and _strip_connectives(m, last_comma + 1, mt.start()) >= mt.start() - 1 \
                        and m.count(",", ss, mt.start()) == 1:
                    speaker_np = _np_backward_subject(doc, ss, mt.start())
    elif cue.order == "clause_subject":
        # "ووصفه بقوله": the subject of the clause the cue closes (أن بوتين ناقش … ووصفه).
        cands = [x for x in doc.mentions_in(clause, mt.start()) if x.type in ("PER", "ORG")]
        if cands and clause > doc.sent_start(mt.start()):
            speaker_np = (cands[0].start, cands[0].end)
    elif cue.order in ("sov", "naming"):
        speaker_np = _np_backward_subject(doc, clause, mt.start())
        # Persian: "در پاسخ به خبرگزاری تاس" before the verb names the outlet, not the speaker.
        if speaker_np:
            tail = _via(doc, speaker_np[1], mt.start())
            if tail and tail.get("entity_id"):
                via = tail
    # Sources after the verb: "نقلت X عن Y", "از قول Y نقل کرد".
    if cue.order == "vso":
        src_np, outlets = _source_chain(doc, ce, region_end)
    else:
        src_np, outlets = _source_chain(doc, min(clause, cs), mt.start())
    if cue.order == "vso" and (src_np or outlets):
        if speaker_np and _is_outlet(doc, *speaker_np):
            via = _via(doc, *speaker_np)
            speaker_np = src_np or (outlets[-1] if outlets else speaker_np)
            if src_np is None and outlets:
                via = _via(doc, *speaker_np) if via is None else via
        elif speaker_np is None:
            speaker_np = src_np or (outlets[-1] if outlets else None)
    elif cue.order == "sov" and src_np and speaker_np and _is_outlet(doc, *speaker_np):
        via = _via(doc, *speaker_np)
        speaker_np = src_np
    # ل + outlet after the speaker: "قال مصدر … لرويترز".
    if speaker_np and via is None:
        lm = _TO_RE.match(m, speaker_np[1], region_end)
        if lm:
            v = _via(doc, lm.end(), min(region_end, lm.end() + 30))
            if v and v.get("entity_id"):
                via = v
    if speaker_np and doc.in_quote(speaker_np[0]) and doc.in_quote(speaker_np[1] - 1):
        speaker_np = None  # nobody is named inside somebody else's quote
    speaker = None
    if speaker_np:
        tok = _TOKEN_RE.search(m, speaker_np[0], speaker_np[1])
        if tok and tok.group() in _res().pronouns:
            speaker = _implicit_speaker(doc, mt.start(), last_speaker, continuing=False)
        elif _res().outlet_anaphora_re.match(m, speaker_np[0]) and not _outlet_lookup(doc, *speaker_np):
            v = _via(doc, *speaker_np)
            if v and v.get("entity_id"):
                speaker = {**v, "affiliation": None}
        else:
            speaker = _speaker(doc, *speaker_np)
    if speaker is None and cue.order in ("inherit", "vso", "sov", "clause_subject"):
        # An implicit subject (وأضاف, قائلا, کما قالت): the last speaker of the sentence or article.
        if prev is not None and prev.speaker is not None:
            speaker, via = prev.speaker, via or prev.via
        elif cue.order == "vso" and (not _clause_initial(doc, mt.start()) or not _no_subject_after(doc, ce)):
            pass  # "والحقائق تقول لنا إن" / "وقالت إحدى …": a subject is there, and it is no speaker
        elif cue.order != "sov":
            continuing = _res().continuation_re.fullmatch(m, cs, ce) is not None
            speaker = _implicit_speaker(doc, mt.start(), last_speaker, continuing=continuing)
    if via is None:
        via = _report_via(doc, mt.start())
        if via and speaker and via.get("entity_id") == speaker.get("entity_id"):
            via = None
    return _Attr(speaker, via, m[cs:ce], (cs, ce), cue.stance, content)


def _report_via(doc: _Doc, p: int) -> dict[str, Any] | None:
    """"وفقا لرويترز، …" / "به گزارش …" earlier in the sentence names the outlet."""
    ss = doc.sent_start(p)
    for lang in doc.langs:
        if lang.report_via_re is None:
            continue
        for mt in lang.report_via_re.finditer(doc.m, ss, p):
            v = _via(doc, mt.end(), min(p, mt.end() + 40))
            if v and v.get("entity_id"):
                return v
    return None


# --------------------------------------------------------------------------------------------
# Direct quotes


def _word_count(s: str, cap: int, pos: int = 0, endpos: int = sys.maxsize) -> int:
    """Words in ``s[pos:endpos]``, counted up to ``cap``: callers only compare it with small numbers."""
    return len(list(islice(_TOKEN_RE.finditer(s, pos, endpos), cap)))


def _is_name_like(doc: _Doc, o: int, c: int, closed: bool, n: int) -> bool:
    """A quoted span that is a name, title or scare-quoted word rather than speech (``n`` words, up to 9)."""
    res = _res()
    m = doc.m
    inner_s, inner_e = o + 1, c
    if n == 0:
        return True
    mens = doc.mentions_in(inner_s, inner_e)
    if mens and n <= 4:
        covered = sum(x.end - x.start for x in mens)
        if covered >= 0.6 * len(m[inner_s:inner_e].strip()):
            return True
    if n <= 8:
        before = m[max(0, o - 40) : o]
        if res.naming_before_re.search(before):
            return True
        if closed and res.naming_after_re.match(m, c + 1, min(len(m), c + 40)):
            return True
        inner = m[inner_s:inner_e].strip()
        if inner in res.outlets or res.outlets_re.fullmatch(inner) or res.affiliations_re.fullmatch(inner):
            return True
    return False


def _ends_clause(m: str, p: int) -> bool:
    """Whether a clause ends at ``p`` (punctuation, line end or end of text after spaces)."""
    while p < len(m) and m[p] == " ":
        p += 1
    return p >= len(m) or m[p] in ".,;:!?\n-)"


def _immediate_gap(m: str, a: int, b: int) -> bool:
    return m[a:b].strip(" ,:-\n") == ""


def _attr_before(doc: _Doc, o: int, cues_before: list[tuple[re.Match[str], _Cue, _Attr]],
                 n_words: int) -> tuple[_Attr, bool] | None:
    """Attribution from a cue before the quote; the bool says whether the quote is the whole content."""
    m = doc.m
    res = _res()
    if not cues_before:
        return None
    mt, cue, attr = cues_before[-1]
    ce = mt.end()
    if cue.order == "naming":
        return None
    gap = m[ce:o]
    # "قوله" right before the quote: "عن نائب الوزير قوله "…"".
    for lang in doc.langs:
        if lang.quote_noun_re is not None:
            qn = None
            for q in lang.quote_noun_re.finditer(m, ce, o):
                qn = q
            if qn is not None and _immediate_gap(m, qn.end(), o):
                return attr, True
    if _immediate_gap(m, ce, o):
        return attr, True
    if attr.content_start >= 0 and attr.content_start <= o and _immediate_gap(m, attr.content_start, o):
        return attr, True
    # The speaker phrase stands between the cue and the quote (Arabic VSO).
    sp = attr.speaker
    if sp is not None and cue.order == "vso":
        sp_end = doc.to_m(sp["end"])
        tail = m[sp_end:o]
        if (sp_end >= ce and len(_TOKEN_RE.findall(tail)) <= 2 and not any(ch in tail for ch in ".\n")
                and not any(lang.compl_re.search(m, sp_end, o) for lang in doc.langs)):
            return attr, True
    # Otherwise the quote is part of the reported clause: a fragment, kept when long enough.
    if len(gap) < _BACK and n_words >= 5 and not any(ch in gap for ch in ".\n!?"):
        return attr, False
    del res
    return None


def _attr_after(doc: _Doc, c: int, o: int, last_speaker: dict | None) -> _Attr | None:
    """Attribution after the quote: "…"، نقلت الوكالة عن مسؤول …; … را «…» خطاب کرده است."""
    m = doc.m
    end = min(len(m), c + _AHEAD)
    if not _find_cues(doc, c + 1, end):  # most quotes: no cue follows closely, no sentence end to find
        return None
    end = min(end, doc.sent_end(c + 1) + 1)
    for mt, cue in _find_cues(doc, c + 1, end):
        gap = m[c + 1 : mt.start()]
        if cue.order == "naming" or (cue.order == "sov" and cue.stance == "assert"):
            # Persian: the quote is the object of a naming verb; the subject opens the clause.
            if len(_TOKEN_RE.findall(gap)) > 3 or any(ch in gap for ch in '."\n'):
                return None
            clause = _clause_start(doc, o)
            cues_in = _find_cues(doc, clause, o)
            if cues_in:
                clause = max(clause, cues_in[-1][0].end())
            np = _np_backward_subject(doc, clause, o)
            if np is None:
                return None
            speaker = _speaker(doc, *np)
            return _Attr(speaker, None, m[mt.start("cue") : mt.end("cue")], (mt.start("cue"), mt.end("cue")),
                         cue.stance)
        if cue.order == "vso" and _immediate_gap(m, c + 1, mt.start()):
            attr = _attribute_cue(doc, mt, cue, None, last_speaker)
            if attr.speaker is None:
                return None
            sp_s = doc.to_m(attr.speaker["start"])
            if sp_s < mt.end():
                return None
            return attr
        return None
    return None


def _attr_inside(doc: _Doc, o: int, c: int) -> _Attr | None:
    """"… به گفته افسر سوریه ای، …" inside a long quote names its speaker."""
    m = doc.m
    for lang in doc.langs:
        if lang.according_re is None:
            continue
        for mt in lang.according_re.finditer(m, o + 1, c):
            np = _np_forward(doc, mt.end(), c)
            if np and _has_speaker_head(doc, *np):
                sp = _speaker(doc, *np)
                if sp:
                    return _Attr(sp, None, m[mt.start() : mt.end()], (mt.start(), mt.end()), "assert")
    return None


def quote_id(start: int, end: int, text: str) -> str:
    """Deterministic quote id: a short hash of the span and its text."""
    return hashlib.sha1(f"{start}:{end}:{text}".encode()).hexdigest()[:16]


def _out(doc: _Doc, kind: str, s: int, e: int, attr: _Attr) -> dict[str, Any] | None:
    a, b = doc.src(s, e)
    while a < b and doc.text[a].isspace():
        a += 1
    while b > a and (doc.text[b - 1].isspace() or doc.text[b - 1] in "."):
        b -= 1
    if b <= a:
        return None
    text = doc.text[a:b]
    cue_span = list(doc.src(*attr.cue_span)) if attr.cue_span else None
    stance = attr.stance
    if _word_count(text, 3) <= 2 and match_key(text).strip(" .!") in _res().bare_negative:
        stance = "deny"
    return {
        "id": quote_id(a, b, text),
        "kind": kind,
        "start": a,
        "end": b,
        "text": text,
        "cue": doc.text[cue_span[0] : cue_span[1]] if cue_span else None,
        "cue_span": cue_span,
        "speaker": attr.speaker,
        "via": attr.via,
        "stance": stance,
        "claim_id": None,
    }


def extract_quotes(
    text: str, language: str, entities: Sequence[dict], *, exclude: Sequence[tuple[int, int]] = ()
) -> list[dict]:
    """Find direct and indirect quotes with speaker, outlet and reporting cue.

    Args:
        text: the article text; every offset returned indexes it.
        language: ``"ar"`` or ``"fa"`` (anything else tries both cue sets).
        entities: entities of the text as produced by :func:`khabar.entities.extract_entities`
            (``id``, ``type``, ``names``/``name``, ``mentions`` with ``start``/``end``).
        exclude: source spans (boilerplate) in which nothing is reported.

    Returns:
        Quotes sorted by start: ``{"id", "kind", "start", "end", "text", "cue", "cue_span", "speaker",
        "via", "stance", "claim_id"}``; ``speaker``/``via`` are ``{"text", "start", "end",
        "entity_id", "name"[, "affiliation"]}`` or None.
    """
    if not text:
        return []
    doc = _build_doc(text, language, entities, exclude)
    _note_outlets(doc)
    spans = _pair_marks(doc)
    doc.boundaries = _boundaries(doc.m, spans)
    m = doc.m

    # All reporting cues with their attribution, sentence by sentence (previous cue in the same
    # sentence gives an implicit subject to قائلا / وأضاف).
    quote_inner = bytearray(len(m) + 1)
    for o, c, closed in spans:
        if closed and c - o <= _MAX_UNCLOSED:
            quote_inner[o + 1 : c] = b"\x01" * (c - o - 1)
    doc.quote_inner = quote_inner
    cues: list[tuple[re.Match[str], _Cue, _Attr]] = []
    last_speaker: dict | None = None
    prev: _Attr | None = None
    prev_sent = -1
    for mt, cue in _find_cues(doc, 0, len(m)):
        if quote_inner[mt.start()] or doc.is_excluded(mt.start(), mt.end()):
            continue
        ss = doc.sent_start(mt.start())
        if ss != prev_sent:
            prev = None
            prev_sent = ss
        attr = _attribute_cue(doc, mt, cue, prev, last_speaker)
        cues.append((mt, cue, attr))
        prev = attr
        if attr.speaker is not None and cue.order not in ("clause_subject", "naming"):
            last_speaker = attr.speaker
    cue_starts = [x[0].start() for x in cues]

    quotes: list[dict[str, Any]] = []
    direct_spans: list[tuple[int, int]] = []
    used_cues: set[int] = set()
    for o, c, closed in spans:
        if doc.is_excluded(o, c) or any(a <= o and c <= b for a, b in direct_spans):
            continue
        n_words = _word_count(m, 9, o + 1, c)
        if _is_name_like(doc, o, c, closed, n_words):
            continue
        ss = doc.sent_start(o)
        lo = bisect_left(cue_starts, max(ss, o - _BACK))
        hi = bisect_left(cue_starts, o)
        before = cues[lo:hi]
        attr: _Attr | None = None
        found = _attr_before(doc, o, before, n_words)
        after = _attr_after(doc, c, o, last_speaker) if closed else None
        whole = False
        if found is not None:
            attr, whole = found
            if whole and n_words < 5 and closed and not _ends_clause(m, c + 1):
                whole = False  # a short quoted phrase inside a clause is a scare quote
            if not whole and after is not None:
                attr, whole = after, True
        elif after is not None:
            attr, whole = after, True
        if attr is None or (not whole and n_words < 5):
            inside = _attr_inside(doc, o, c) if n_words >= 6 else None
            if inside is None:
                continue
            attr = inside
            attr.via = attr.via or _report_via(doc, o)
        if attr.speaker is None:
            continue
        if doc.to_m(attr.speaker["start"]) < o < doc.to_m(attr.speaker["end"]):
            continue  # a speaker phrase that runs into the quote marks a name in quotes, not speech
        if n_words <= 1 and not whole:
            continue
        if n_words <= 1 and attr.cue_span and _immediate_gap(m, attr.cue_span[1], o) is False and \
                not _immediate_gap(m, c + 1, attr.cue_span[0]):
            continue
        q = _out(doc, "direct", o + 1, c, attr)
        if q:
            quotes.append(q)
            direct_spans.append((o, c))
            if attr.cue_span:
                used_cues.add(attr.cue_span[0])

    # Indirect speech: a cue with a speaker and a content clause that is not a direct quote.
    for mt, cue, attr in cues:
        if attr.speaker is None or cue.order == "naming":
            continue
        cs = attr.cue_span[0] if attr.cue_span else mt.start()
        se = doc.sent_end(mt.end())
        start = attr.content_start if attr.content_start > mt.end() else mt.end()
        # "X گفت: …" / "وقال المسؤول: …": what follows a colon runs to the end of the paragraph.
        colon = _colon_after(doc, mt, attr)
        if colon >= 0:
            start = colon + 1
            se = _para_end(doc, start)
        # The content clause runs to the end of the sentence or to the next reporting cue.
        # A next cue whose subject opens our content ("قالت أن الحرس الثوري نفى …") is reported too.
        end = se
        first_next = bisect_right(cue_starts, mt.end())
        for k in range(first_next, min(len(cues), first_next + 8)):
            nx = cue_starts[k]
            if nx >= se:
                break
            if _word_count(m, 5, start, nx) > 4:
                # A cue in a later sentence starts a new statement with its own subject.
                end = max(start, doc.sent_start(nx)) if doc.sent_start(nx) > start else nx
                break
        if colon >= 0:
            pass
        elif cue.order == "sov" and attr.content_start <= mt.end():
            # Persian "X را تکذیب کرد": the object before the verb is what was denied.
            obj = _RA_END_RE.search(m[max(0, cs - 200) : cs])
            if obj and cue.stance in ("deny", "confirm"):
                sp_end = doc.to_m(attr.speaker["end"])
                start, end = max(sp_end, doc.sent_start(cs)), cs - len(obj.group())
        elif cue.order == "vso" and attr.content_start <= mt.end():
            if cue.stance == "assert":
                continue
            # "نفى متحدث … يوم الجمعة هذه المحادثات،": the object after the speaker, up to a comma.
            sp_end = doc.to_m(attr.speaker["end"]) if attr.speaker.get("end") is not None else mt.end()
            if sp_end > mt.end():
                start = sp_end
            comma = m.find(",", start, end)
            if comma > start:
                end = comma
        seg = m[start:end]
        lead = len(seg) - len(seg.lstrip(" ,:-"))
        start += lead
        n_content = _word_count(m, 2, start, end)
        if n_content < 2 and cue.stance == "assert":
            continue
        if n_content < 1:
            continue
        # A content clause that is itself a direct quote is already reported.
        if any(a <= start + 1 and end <= b + 2 for a, b in direct_spans) or (
            m[start:start + 1] == '"' and any(a == start for a, _b in direct_spans)
        ):
            continue
        q = _out(doc, "indirect", start, end, attr)
        # The speaker is never part of what they are reported to say.
        if q and not q["start"] <= q["speaker"]["start"] < q["end"]:
            quotes.append(q)

    # "به گفته X، …" / "وفقا لـX، …" at the head of a sentence.
    for lang, hits in zip(doc.langs, doc.according_hits, strict=True):
        if lang.according_re is None:
            continue
        for mt in hits:
            if quote_inner[mt.start()] or doc.is_excluded(mt.start(), mt.end()):
                continue
            ss = doc.sent_start(mt.start())
            if _strip_connectives(m, ss, mt.start()) != mt.start():
                continue
            np = _np_forward(doc, mt.end(), doc.sent_end(mt.end()))
            if not np or _is_outlet(doc, *np):
                continue
            comma = m.find(",", np[1], np[1] + 3)
            if comma < 0:
                continue
            se = doc.sent_end(comma)
            sp = _speaker(doc, *np)
            if sp is None or any(a <= comma < b for a, b in direct_spans):
                continue
            q = _out(doc, "indirect", comma + 1, se, _Attr(sp, None, m[mt.start() : mt.end()],
                                                           (mt.start(), mt.end()), "assert"))
            if q and _word_count(q["text"], 3) >= 3:
                quotes.append(q)

    # One quote per span; the first reading wins.
    seen: set[tuple[int, int]] = set()
    out = []
    for q in sorted(quotes, key=lambda q: (q["start"], q["end"])):
        if (q["start"], q["end"]) in seen:
            continue
        seen.add((q["start"], q["end"]))
        out.append(q)
    return out
