"""Entity linking: people, organisations and places with one canonical id across languages.

Pipeline per document (pure, no I/O once the data is loaded):

1. Gazetteer names are matched on the normalised *match form* of the text (:mod:`khabar.normalize`)
   with one Aho-Corasick automaton per language, built lazily once. A hit must sit on token
   boundaries, except for Arabic clitics before it (و ف ب ل ك ال and combinations: وال بال لل …) and
   Persian suffixes after it (ها های را, and ی/ای for people and organisations — on a place they make
   an adjective, "ایرانی", which is not a mention of the country). Longest hit wins.
2. Short forms (surname alone, "الأسد", "فارس", first name "قاسم") and names on the stop-list link
   only when the entity is named in full elsewhere in the document, or the NER model tags the span.
3. Typo-tolerant matching (rapidfuzz) for tokens that look like names: inside an NER span, after a
   title (الجنرال, سرلشکر, آقای …) or after a known first name; against the document's entities first,
   then against gazetteer surnames with a stricter threshold and a length floor.
4. NER spans (:func:`khabar.ner.tag_spans`) that overlap no gazetteer mention become entities with a
   stable id derived from the match form of the name (``per:x-<romanised key>``), so every article
   spelling a new name the same way — in either Arabic-script variant — gets the same id.

Every ``start``/``end`` is an index into the input text.

Usage::

    from khabar.entities import extract_entities
    for ent in extract_entities(text, "fa"):
        print(ent["id"], ent["mention_count"], [m["text"] for m in ent["mentions"]])
"""

from __future__ import annotations

import bisect
import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate, pairwise
from typing import Any

import ahocorasick
import numpy as np
from rapidfuzz import fuzz, process
from rapidfuzz.distance import Levenshtein

from khabar import gazetteer as gz
from khabar.normalize import Normalized, match_key, normalize

_AR_PREFIXES = frozenset({
    "و", "ف", "ب", "ل", "ك", "ال", "وال", "فال", "بال", "كال", "لل", "ولل", "فلل", "وب", "ول", "وك", "فب",
    "فل", "فك", "وبال", "فبال", "وكال", "فكال",
})
_FA_SUFFIXES_ANY = frozenset({"ها", "هاي", "هايي", "را"})
_FA_SUFFIXES_NOT_LOC = frozenset({"ي", "اي", "يي"})
# Quote marks and other punctuation between the words of a name ("وكالة “فارس”") are skipped.
_GAP_CLASS = r"[\s\"'«»“”„‘’‹›()\[\]ـ]"
_GAP_RE = re.compile(_GAP_CLASS + "+")
_TOKEN_RE = re.compile(r"[^\W_]+")
# Only gaps that are not already one plain space need rewriting (far fewer matches than _GAP_RE): runs
# of two or more gap characters, and single gap characters that are not a space.
_GAP_ALONE_CLASS = r"[\n\t\r\"'«»“”„‘’‹›()\[\]ـ]"
_GAP_FIX_RE = re.compile(_GAP_CLASS + "{2,}|" + _GAP_ALONE_CLASS)
_MAX_PREFIX = 4
_MAX_SUFFIX = 4
_FUZZ_DOC = 85.0       # against names already in the document
_FUZZ_GLOBAL = 90.0    # against every gazetteer surname
_FUZZ_MIN_LEN = 4
# A typo is much rarer than the name it misspells: a spelling at least a tenth as frequent in the news
# is a word or name of its own (العمري / العامري, محمودی / محمدی).
_TYPO_RARITY = 10
# A ministry right after "minister" names the minister's office (وزير الخارجية الإيرانية), not the ministry.
_MINISTER = frozenset({"وزير", "وزيره", "وزراء"})
_NISBA = ("ي", "يه", "يون", "يين")
_ENDINGS = ("ي", "يه", "يون", "يين", "ين", "اي", "ها", "هاي", "ان")
_NER_MIN_CONF = 0.8
_UNICODE_SIZE = 0x110000
# Below this many characters a regex pass costs less than numpy's per-call overhead.
_VECTOR_MIN = 200
_ROMAN = str.maketrans({
    "ا": "a", "ب": "b", "ت": "t", "ث": "th", "ج": "j", "ح": "h", "خ": "kh", "د": "d", "ذ": "dh", "ر": "r",
    "ز": "z", "س": "s", "ش": "sh", "ص": "s", "ض": "d", "ط": "t", "ظ": "z", "ع": "", "غ": "gh", "ف": "f",
    "ق": "q", "ك": "k", "ل": "l", "م": "m", "ن": "n", "ه": "h", "و": "w", "ي": "y", "پ": "p", "چ": "ch",
    "ژ": "zh", "گ": "g", "ء": "", "ى": "a", "ة": "h",
})


@dataclass(frozen=True)
class _Name:
    entity_id: str
    short: bool


@dataclass
class _Index:
    automaton: Any
    keys: dict[str, list[_Name]]
    surnames: dict[str, set[str]]        # key of a single-token person name -> entity ids
    surname_choices: list[str]
    full_by_first: dict[str, list[tuple[str, str]]]  # first-name key -> [(full key, entity id)]
    lang: str  # what _index() was called with: the key of the per-language caches below


def _strip_al(key: str) -> str:
    """Drop a leading Arabic article; it is matched as a clitic instead."""
    # Not before a nisba ending: السعودية is the country, سعودية alone the adjective "Saudi".
    if key.startswith("ال") and len(key) > 4 and key[2] != " " and not key.endswith("يه"):
        return key[2:]
    return key


@lru_cache(maxsize=65536)
def _key(name: str, lang: str) -> str:
    k = _GAP_RE.sub(" ", match_key(name)).strip().lower()
    return _strip_al(k) if lang == "ar" else k


@lru_cache(maxsize=1)
def _stop_keys() -> frozenset[str]:
    out = set()
    for w in gz.stopwords():
        k = _GAP_RE.sub(" ", match_key(w)).strip().lower()
        out.update({k, _strip_al(k)})
    return frozenset(out)


@lru_cache(maxsize=4)
def _index(lang: str) -> _Index:
    """Automaton and fuzzy-match tables for one language ('ar', 'fa' or 'any'), built once."""
    langs = {"ar": ("ar", "en"), "fa": ("fa", "en")}.get(lang, gz.LANGS)
    stop = _stop_keys()
    never = {_key(w, "fa") for w in gz.never_alone()} | {_key(w, "ar") for w in gz.never_alone()}
    keys: dict[str, list[_Name]] = {}
    surnames: dict[str, set[str]] = {}
    full_by_first: dict[str, list[tuple[str, str]]] = {}
    for ent in gz.entities().values():
        for a in ent.aliases:
            if a.lang not in langs:
                continue
            k = _key(a.text, "ar" if lang == "ar" else a.lang)
            if len(k.replace(" ", "")) < 2:
                continue
            if k in never:
                continue
            short = a.short or k in stop
            lst = keys.setdefault(k, [])
            if not any(n.entity_id == ent.id and n.short == short for n in lst):
                lst.append(_Name(ent.id, short))
            if ent.type == "PER" and a.lang != "en":
                toks = k.split()
                if len(toks) >= 2 and not a.short:
                    full_by_first.setdefault(toks[0], []).append((k, ent.id))
    # Only real surnames take part in typo-tolerant matching: the last word of a full name (or a
    # single-word name). First names and epithets ("امیرحسین", "الثانية") matched people they were not.
    for eid in _surname_owners():
        for k in _surname_keys(eid, lang):
            surnames.setdefault(k, set()).add(eid)
    auto = ahocorasick.Automaton()
    for k in keys:
        auto.add_word(k, k)
    auto.make_automaton()
    return _Index(auto, keys, surnames, sorted(surnames), full_by_first, lang)


@lru_cache(maxsize=1)
def _title_keys() -> tuple[frozenset[str], frozenset[str]]:
    ts = {_GAP_RE.sub(" ", match_key(t)).strip().lower() for t in gz.titles()}
    gn = {_GAP_RE.sub(" ", match_key(t)).strip().lower() for t in gz.given_names()}
    return frozenset(ts), frozenset(gn)


def _ner_module() -> Any:
    """``khabar.ner``, or None where it cannot be imported (linking then works from the gazetteer alone)."""
    try:
        return importlib.import_module("khabar.ner")
    except ImportError:
        return None


def _ner() -> Callable[[str, str], list[tuple[int, int, str, float]]] | None:
    return getattr(_ner_module(), "tag_spans", None)


@lru_cache(maxsize=1)
def _char_classes() -> np.ndarray:
    """Per code point: bit 1 a gap character (``_GAP_CLASS``), bit 2 one rewritten even alone
    (``_GAP_ALONE_CLASS``), bit 4 a token character (``_TOKEN_RE``); derived from the regexes themselves."""
    every = "".join(map(chr, range(_UNICODE_SIZE)))
    out = np.zeros(_UNICODE_SIZE, dtype=np.uint8)
    for pattern, bit in ((_GAP_CLASS, 1), (_GAP_ALONE_CLASS, 2), (r"[^\W_]", 4)):
        pos = [m.start() for m in re.finditer(pattern, every)]
        out[pos] |= bit
    return out


def _code_points(s: str) -> np.ndarray:
    return np.frombuffer(s.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _runs(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end indices of the runs of nonzero values in an array of 0/1 bytes."""
    padded = np.zeros(len(flags) + 2, dtype=np.int8)
    padded[1:-1] = flags
    d = padded[1:] - padded[:-1]
    return (d == 1).nonzero()[0], (d == -1).nonzero()[0]


def _fixed_gaps(m: str) -> list[tuple[int, int]]:
    """``[g.span() for g in _GAP_FIX_RE.finditer(m)]``, from per-character classes in C.

    Every match of ``_GAP_FIX_RE`` is a whole maximal run of gap characters (the first alternative is
    greedy and tried first at the start of every run), so the matches are the runs of two or more and
    the single characters of ``_GAP_ALONE_CLASS``.
    """
    if len(m) < _VECTOR_MIN:
        return [g.span() for g in _GAP_FIX_RE.finditer(m)]
    cls = _char_classes()[_code_points(m)]
    starts, ends = _runs(cls & 1)
    keep = (ends - starts >= 2) | ((cls[starts] & 2) != 0)
    return list(zip(starts[keep].tolist(), ends[keep].tolist(), strict=True))


class _Doc:
    """The working string: match form with punctuation gaps collapsed, and its map to the source."""

    def __init__(self, text: str, norm: Normalized) -> None:
        self.text = text
        self.norm = norm
        m = norm.match
        # Each rewritten gap of the match form becomes one space at the gap's start; the characters
        # between gaps keep their order. The map from working string to match form is kept as, per
        # rewritten gap, its position in the working string (_gw), where it starts and ends in the
        # match form (_ga, _gb) and how far the characters after it are shifted (_gd).
        gaps = _fixed_gaps(m)
        gw: list[int] = []
        gd: list[int] = []
        if gaps:
            pieces: list[str] = []
            pos = 0
            shift = 0
            for a, b in gaps:
                pieces.append(m[pos:a])
                gw.append(a - shift)
                shift += b - a - 1
                gd.append(shift)
                pos = b
            pieces.append(m[pos:])
            plain = " ".join(pieces)
        else:
            plain = m
        self.w = plain.lower()
        # Per working-string character 1 if it is alphanumeric (str.isalnum), as an array and as bytes
        # with a 0 after the end (indexing bytes gives ints: no one-character strings per test).
        alnum = _char_classes()[_code_points(self.w)] >> 2
        self.alnum = alnum
        self.alnum_flags = alnum.tobytes() + b"\x00"
        # Tokens (runs of alnum characters, as _TOKEN_RE finds them): offsets as arrays and lists.
        self.token_starts, self.token_ends = _runs(alnum)
        self.starts: list[int] = self.token_starts.tolist()
        self.ends: list[int] = self.token_ends.tolist()
        self._gw = gw
        self._gd = gd
        self._ga = [a for a, _ in gaps]
        self._gb = [b for _, b in gaps]
        # Lower-casing can change the length of a string (U+0130): then the positions of the working
        # string and of the map disagree, and only the map as a list answers exactly as before.
        self._list: list[int] | None = None
        if len(self.w) != len(plain):
            self._list = [self._at(i) for i in range(len(plain))]

    def _at(self, i: int) -> int:
        """Index in the match form of working-string position ``i``."""
        k = bisect.bisect_left(self._gw, i)
        return i + self._gd[k - 1] if k else i

    def idx(self, i: int) -> int:
        """Index in the match form of working-string position ``i`` (``0 <= i < len(w)``)."""
        return self._list[i] if self._list is not None else self._at(i)

    def _first_at_or_after(self, j: int) -> int:
        """The first working-string position whose match-form index is at least ``j`` (or ``len(w)``)."""
        if self._list is not None:
            return bisect.bisect_left(self._list, j)
        n = len(self.w)
        # Inside a rewritten gap (after its first character): the position right after the gap's space.
        k = bisect.bisect_left(self._ga, j)
        if k and j <= self._gb[k - 1]:
            return min(self._gw[k - 1] + 1, n)
        return max(0, min(j - (self._gd[k - 1] if k else 0), n))

    def to_source(self, s: int, e: int) -> tuple[int, int]:
        # Normalized.to_source(start, end, "match"), inlined: it runs for every mention.
        norm = self.norm
        n = len(norm.match)
        start = min(max(self.idx(s), 0), n)
        end = min(max(self.idx(e - 1) + 1, start), n)
        a = norm.match_map[start]
        b = a if end == start else max(max(norm.match_ends[start:end]), a)
        # Never start or end a mention on a space or quote mark.
        t = self.text
        while a < b and not t[a].isalnum():
            a += 1
        while b > a and not t[b - 1].isalnum():
            b -= 1
        return a, b

    def from_source(self, a: int, b: int) -> tuple[int, int]:
        # The source start of match-form positions never decreases, and the working string keeps their
        # order: the first position at or after a source offset is found by bisecting the map itself.
        starts = self.norm.match_map
        n = len(self.norm.match)
        s = self._first_at_or_after(bisect.bisect_left(starts, a, 0, n))
        e = self._first_at_or_after(bisect.bisect_left(starts, b, 0, n))
        return s, max(e, s)


@dataclass(slots=True)
class _Hit:
    start: int      # in the working string, the name itself (article kept when it was a clitic)
    end: int
    key: str
    names: list[_Name]
    entity_id: str | None = None
    source: str = "gazetteer"
    etype: str | None = None
    surface: str | None = None


def _gazetteer_hits(doc: _Doc, lang: str, index: _Index) -> list[_Hit]:
    w = doc.w
    aln = doc.alnum_flags  # aln[i] == w[i].isalnum(), and aln[n] == 0
    find = _ar_hits if lang == "ar" else _other_hits
    cands = find(w, aln, doc.starts, doc.ends, index)
    cands.sort(key=lambda h: (h[0] - h[1], h[0]))
    keys = index.keys
    taken = bytearray(len(w) + 1)
    out: list[_Hit] = []
    for start, e, key in cands:
        if taken.find(1, start, e) >= 0:
            continue
        taken[start:e] = b"\x01" * (e - start)
        out.append(_Hit(start, e, key, keys[key]))
    out.sort(key=lambda h: h.start)
    return out


def _ar_hits(w: str, aln: bytes, starts: list[int], ends: list[int], index: _Index) -> list[tuple[int, int, str]]:
    """Candidate hits of an Arabic text: whole tokens, or a name after clitics (start, end, key)."""
    cands: list[tuple[int, int, str]] = []
    # This runs for every automaton hit, most inside words. An Arabic name ends its token (no suffix),
    # which rules out half of the hits at once.
    for end, key in index.automaton.iter(w):
        e = end + 1
        if aln[e]:
            continue
        s = e - len(key)
        if s > 0 and aln[s - 1]:
            # The clitics before the hit are the start of its token: one of _AR_PREFIXES, looked up
            # at most _MAX_PREFIX + 1 letters back (as a walk along the letters would).
            ts = starts[bisect.bisect_right(starts, s - 1) - 1]
            if s - ts > _MAX_PREFIX + 1:
                continue
            clitics = w[ts:s]
            if clitics not in _AR_PREFIXES:
                continue
            cands.append((s - 2 if clitics.endswith("ال") else s, e, key))
        else:
            cands.append((s, e, key))
    return cands


def _other_hits(w: str, aln: bytes, starts: list[int], ends: list[int], index: _Index) -> list[tuple[int, int, str]]:
    """Candidate hits of a Persian (or unknown-language) text: whole tokens, or a name and a suffix."""
    ents = gz.entities()
    keys = index.keys
    cands: list[tuple[int, int, str]] = []
    for end, key in index.automaton.iter(w):
        e = end + 1
        s = e - len(key)
        if s > 0 and aln[s - 1]:
            continue
        if aln[e]:
            # A Persian suffix after the hit is the rest of its token, looked at up to _MAX_SUFFIX + 1
            # letters ahead (as a walk along the letters would); ی/ای do not follow a place.
            te = ends[bisect.bisect_right(starts, e) - 1]
            if te - e > _MAX_SUFFIX + 1:
                continue
            suf = w[e:te]
            if suf in _FA_SUFFIXES_ANY or (
                    suf in _FA_SUFFIXES_NOT_LOC and any(ents[x.entity_id].type != "LOC" for x in keys[key])):
                cands.append((s, e, key))
        else:
            cands.append((s, e, key))
    return cands


def _prev_token(w: str, pos: int) -> str | None:
    j = pos
    while j > 0 and not w[j - 1].isalnum():
        j -= 1
    i = j
    while i > 0 and w[i - 1].isalnum():
        i -= 1
    return w[i:j] if i < j else None


def _romanise(key: str) -> str:
    s = key.translate(_ROMAN).lower()
    s = re.sub(r"[^a-z0-9]+", "-", s).strip("-")
    return s or "x"


@lru_cache(maxsize=65536)
def new_entity_id(name: str, etype: str) -> str:
    """Stable id of an entity the gazetteer lacks: type prefix + romanised match form of its name."""
    return f"{etype.lower()}:x-{_romanise(_key(name, 'fa'))}"


@lru_cache(maxsize=50_000)
def _fuzzy_rejected(token: str, lang: str) -> bool:
    """Whether a token is never a misspelt name (too short, stop-listed, a known name with an ending).

    Depends on the token alone, so it is cached per language.
    """
    return _fuzzy_rejected_uncached(token, _index(lang))


@lru_cache(maxsize=50_000)
def _fuzzy_global(token: str, lang: str) -> str | None:
    """Id of the one person whose gazetteer surname a (not rejected) token matches, or None.

    The search scans the whole surname list, so it runs only when a caller needs the answer and is
    cached per language.
    """
    return _fuzzy_global_uncached(token, _index(lang))


@lru_cache(maxsize=512)
def _surname_choices(lang: str, n: int) -> list[str]:
    """The surnames a token of length n can reach the global threshold with, in the original order.

    ``fuzz.ratio`` is 100 * (1 - indel / (n + m)) and indel >= |n - m|, so longer or shorter surnames
    cannot score ``_FUZZ_GLOBAL``; the bound keeps one character of slack against rounding.
    """
    slack = (1 - _FUZZ_GLOBAL / 100) * n
    return [c for c in _index(lang).surname_choices
            if abs(len(c) - n) <= slack + (1 - _FUZZ_GLOBAL / 100) * len(c) + 1]


@lru_cache(maxsize=512)
def _surname_counts(lang: str, n: int) -> tuple[dict[str, int], np.ndarray, np.ndarray]:
    """For ``_surname_choices(lang, n)``: a row per letter of how often each surname has it, and per
    surname the fewest letters a token of length n must share with it to score ``_FUZZ_GLOBAL - 1``."""
    choices = _surname_choices(lang, n)
    row: dict[str, int] = {}
    for c in choices:
        for ch in c:
            row.setdefault(ch, len(row))
    counts = np.zeros((len(row), len(choices)), dtype=np.int32)
    for i, c in enumerate(choices):
        for ch in c:
            counts[row[ch], i] += 1
    # 200 * common >= (_FUZZ_GLOBAL - 1) * (n + m), solved for the integer common (rounded up).
    margin = int(_FUZZ_GLOBAL) - 1
    need = [-(-margin * (n + len(c)) // 200) for c in choices]
    return row, counts, np.array(need, dtype=np.int32)


def _reachable_surnames(token: str, lang: str) -> list[str]:
    """The surnames of ``_surname_choices`` (in their order) that ``token`` might reach ``_FUZZ_GLOBAL`` with.

    ``fuzz.ratio`` is at most 200 * common / (n + m) where ``common`` is the number of letters the two
    strings share (counted with repetition; the longest common subsequence is no longer). Surnames
    whose bound is below the threshold by a whole point cannot match; the rest are scored as before.
    """
    choices = _surname_choices(lang, len(token))
    if not choices:
        return choices
    row, counts, need = _surname_counts(lang, len(token))
    mine: dict[int, int] = {}
    for ch in token:
        r = row.get(ch)
        if r is not None:
            mine[r] = mine.get(r, 0) + 1
    if not mine:
        return []
    shared = counts[list(mine)]
    np.minimum(shared, np.array(list(mine.values()), dtype=np.int32)[:, None], out=shared)
    keep = (shared.sum(axis=0) >= need).nonzero()[0]
    return [choices[i] for i in keep.tolist()]


def _fuzzy_rejected_uncached(token: str, index: _Index) -> bool:
    if len(token) < _FUZZ_MIN_LEN or token in _stop_keys():
        return True
    # A known name with an adjective or plural ending (ایرانی, الإيرانية) is not a misspelt name.
    bare = _strip_al(token)
    if bare in index.keys:
        return True
    ents = gz.entities()
    for suf in _ENDINGS:
        stem = bare[: -len(suf)]
        if bare.endswith(suf) and any(ents[n.entity_id].type == "LOC" for n in index.keys.get(stem, ())):
            return True
    return False


def _fuzzy_global_uncached(token: str, index: _Index) -> str | None:
    if len(token) >= _FUZZ_MIN_LEN + 1:
        # Surnames that cannot reach the threshold are left out: they never win extractOne.
        reachable = _reachable_surnames(token, index.lang)
        best = process.extractOne(token, reachable, scorer=fuzz.ratio,
                                  score_cutoff=_FUZZ_GLOBAL) if reachable else None
        if (best is not None and len(index.surnames[best[0]]) == 1 and _spelling_variant(token, best[0])
                and _rare_enough(token, best[0])):
            return next(iter(index.surnames[best[0]]))
    return None


@lru_cache(maxsize=1)
def _variant_letters() -> frozenset[str]:
    return frozenset({match_key(c) for c in gz.name_variant_letters()} - {""})


def _spelling_variant(token: str, surname: str) -> bool:
    """Whether ``token`` can be a misspelling of ``surname``: they differ only in long vowels, hamza
    seats or spaces (data file), and not in the last letter (الجابر / الجابري, باقر / باقري differ)."""
    letters = _variant_letters()
    n, m = len(token), len(surname)
    for op, i, j in Levenshtein.editops(token, surname):
        if op == "delete":
            ok = i < n - 1 and (token[i] in letters or token[i] == " ")
        elif op == "insert":
            ok = i < n and j < m - 1 and (surname[j] in letters or surname[j] == " ")
        else:
            ok = i < n - 1 and j < m - 1 and token[i] in letters and surname[j] in letters
        if not ok:
            return False
    return True


@lru_cache(maxsize=65536)
def _word_rank(key: str) -> int | None:
    """Frequency rank of a word in the news (the NER model's word list; None when rare or unknown)."""
    ner = _ner_module()
    if ner is None:
        return None
    ranks = [r for r in (ner.word_rank(key, "ar"), ner.word_rank(key, "fa")) if r is not None]
    return min(ranks, default=None)


def _rare_enough(token: str, surname: str) -> bool:
    """Whether ``token`` is rare enough next to ``surname`` to be a typo of it rather than a word."""
    mine = _word_rank(token)
    if mine is None:
        return True
    theirs = _word_rank(surname)
    return theirs is not None and mine >= _TYPO_RARITY * theirs


@lru_cache(maxsize=50_000)
def _after_first_name(prev: str, token: str, lang: str) -> str | None:
    """The person whose full name is ``prev`` (a first name) followed by a name like ``token``, if any."""
    for full, eid in _index(lang).full_by_first.get(prev, ()):
        # The shared first name must not carry the score: "علي الامن" is not "علي خامنئي", and "محمد باقر"
        # (a given name) is not "محمد باقري".
        rest = full[len(prev) + 1:]
        if (fuzz.ratio(token, rest) >= _FUZZ_DOC and fuzz.ratio(f"{prev} {token}", full) >= _FUZZ_DOC
                and _spelling_variant(token, rest)):
            return eid
    return None


def _fuzzy(token: str, doc_names: dict[str, str], index: _Index, prev: str | None,
           given: frozenset[str], doc_choices: list[str] | None = None, allow_global: bool = True) -> str | None:
    """Entity id for a possibly misspelt name token, or None.

    ``doc_choices`` is ``list(doc_names)`` when the caller already has it. ``allow_global`` lets a
    token match a surname of a person the document does not name otherwise.
    """
    if _fuzzy_rejected(token, index.lang):
        return None
    if prev is not None and prev in given:
        eid = _after_first_name(prev, token, index.lang)
        if eid is not None:
            return eid
    if doc_names:
        choices = doc_choices if doc_choices is not None else list(doc_names)
        best = process.extractOne(token, choices, scorer=fuzz.ratio, score_cutoff=_FUZZ_DOC)
        if best is not None and _spelling_variant(token, best[0]):
            return doc_names[best[0]]
    return _fuzzy_global(token, index.lang) if allow_global else None


@lru_cache(maxsize=8192)
def _surname_owners() -> list[str]:
    return [eid for eid, ent in gz.entities().items() if ent.type == "PER"]


def _surname_keys(entity_id: str, lang: str, key_lang: str | None = None) -> tuple[str, ...]:
    """Surnames of a person for fuzzy matching: the last word of each Arabic-script full name, and
    single-word names that are also the last word of a full name (long enough, not given names)."""
    given = _title_keys()[1]
    langs = {"ar": ("ar",), "fa": ("fa",)}.get(lang, ("ar", "fa"))
    patronymic = _patronymic_keys()
    last: list[str] = []
    single: list[str] = []
    for a in gz.entities()[entity_id].aliases:
        if a.lang not in langs:
            continue
        toks = _key(a.text, key_lang or ("ar" if lang == "ar" else a.lang)).split()
        if len(toks) >= 2 and toks[-2] in patronymic:
            continue  # "حمزة بن الحسين": the last word is the father's name
        (single if len(toks) == 1 else last).append(toks[-1] if toks else "")
    lasts = set(last)
    out = [t for t in last if len(t) >= _FUZZ_MIN_LEN and t not in given]
    out += [t for t in single if t in lasts or _strip_al(t) in lasts or f"ال{t}" in lasts]
    return tuple(dict.fromkeys(t for t in out if len(t) >= _FUZZ_MIN_LEN and t not in given))


@lru_cache(maxsize=1)
def _patronymic_keys() -> frozenset[str]:
    return frozenset(match_key(w).lower() for w in gz.patronymic_particles())


@lru_cache(maxsize=8192)
def _name_tokens(entity_id: str) -> tuple[str, ...]:
    """Surnames of a person named in the document that a misspelt token is compared against."""
    return _surname_keys(entity_id, "any", "fa")


@lru_cache(maxsize=1)
def _trigger_words() -> frozenset[str]:
    """Words after which a token may be a name: given names and every word of every title."""
    titles, given = _title_keys()
    out = set(given) | set(titles)
    for t in titles:
        out.update(t.split())
    return frozenset(out)


@lru_cache(maxsize=1)
def _trigger_automaton() -> Any:
    """Aho-Corasick automaton of the one-token trigger words (values: their lengths)."""
    auto = ahocorasick.Automaton()
    for word in _trigger_words():
        if _TOKEN_RE.fullmatch(word):
            auto.add_word(word, len(word))
    auto.make_automaton()
    return auto


def _after_triggers(doc: _Doc) -> list[int]:
    """Indices ``i + 1`` of the document's tokens ``i`` that are trigger words, in order.

    One Aho-Corasick pass over the working string, keeping matches that are whole tokens, so a long
    document's tokens are never all cut out of the string.
    """
    auto = _trigger_automaton()
    starts = doc.starts
    if not starts or not len(auto):
        return []
    flags = doc.alnum_flags  # 0 after the end: a match ending the string is followed by no letter
    out: list[int] = []
    for last, n in auto.iter(doc.w):
        if flags[last + 1]:  # ends inside a word, as most hits do
            continue
        first = last - n + 1
        if first == 0 or not flags[first - 1]:
            out.append(bisect.bisect_left(starts, first) + 1)
    return out


def extract_entities(text: str, language: str, *, exclude: Sequence[tuple[int, int]] = (),
                     normalized: Normalized | None = None, use_ner: bool = True) -> list[dict]:
    """Find and link the people, organisations and places of one document.

    Args:
        text: the input text; all offsets index it.
        language: ``"ar"`` or ``"fa"`` (anything else matches names of both).
        exclude: spans of removed boilerplate; mentions starting inside them are dropped.
        normalized: ``normalize(text)`` when the caller already has it (saves the work).
        use_ner: consult :func:`khabar.ner.tag_spans` for names the gazetteer lacks.

    Returns:
        One dict per entity, in order of first mention: ``id``, ``type``, ``names`` (en/ar/fa where
        known), ``name``, ``mention_count``, ``mentions`` ([{start, end, text}]), ``source``
        (``gazetteer`` / ``fuzzy`` / ``ner``).
    """
    if not text:
        return []
    lang = language if language in ("ar", "fa") else "any"
    norm = normalized if normalized is not None and normalized.source == text else normalize(text)
    doc = _Doc(text, norm)
    index = _index(lang)
    ents = gz.entities()
    hits = _gazetteer_hits(doc, "ar" if lang == "ar" else lang, index)

    ner_spans: list[tuple[int, int, str, float]] = []
    tagger = _ner() if use_ner else None
    if tagger is not None:
        try:
            ner_spans = [sp for sp in tagger(text, language) if sp[3] >= _NER_MIN_CONF]
        except (FileNotFoundError, OSError, ValueError):  # no model shipped yet
            ner_spans = []
    ner_w = [(*doc.from_source(a, b), t) for a, b, t, _ in ner_spans]

    # Full names establish entities; short forms and stop-listed names then resolve against them.
    established: dict[str, int] = {}
    for h in hits:
        full = [n for n in h.names if not n.short]
        if full:
            h.entity_id = full[0].entity_id
            if len(full) > 1:  # one key, several entities (a city and a country): prefer a country
                h.entity_id = min(full, key=lambda n: ents[n.entity_id].attrs.get("kind") != "country")\
                    .entity_id
            established.setdefault(h.entity_id, h.start)
    # The first NER span holding a hit: NER spans come in text order, so when their starts and ends both
    # never decrease it is the first of those starting at or before the hit whose end reaches the hit's end.
    ner_a = [a for a, _, _ in ner_w]
    ner_b = [b for _, b, _ in ner_w]
    ordered = all(x <= y for x, y in pairwise(ner_a)) and all(x <= y for x, y in pairwise(ner_b))
    for h in hits:
        if h.entity_id is not None:
            continue
        known = [n.entity_id for n in h.names if n.entity_id in established]
        if known:
            h.entity_id = min(known, key=lambda eid: abs(established[eid] - h.start))
            continue
        if ordered:
            k = bisect.bisect_right(ner_a, h.start)
            j = bisect.bisect_left(ner_b, h.end, 0, k)
            holder = ner_w[j] if j < k else None
        else:
            holder = next(((a, b, t) for a, b, t in ner_w if a <= h.start and h.end <= b), None)
        if holder is not None:
            t = holder[2]
            typed = [n.entity_id for n in h.names if ents[n.entity_id].type == t]
            if len(typed) == 1:
                h.entity_id = typed[0]
                established.setdefault(h.entity_id, h.start)
    titles, given = _title_keys()
    linked = []
    for h in hits:
        if h.entity_id is None:
            continue
        # "وزير الخارجية الإيرانية" is a person's office, not a mention of the ministry.
        if ents[h.entity_id].type == "ORG" and _prev_token(doc.w, h.start) in _MINISTER:
            continue
        linked.append(h)

    # Typo-tolerant matching for name-like tokens that no name covers.
    doc_names: dict[str, str] = {}
    for eid in established:
        if ents[eid].type == "PER":
            for tok in _name_tokens(eid):
                doc_names.setdefault(tok, eid)
    doc_choices = list(doc_names)
    covered = [(h.start, h.end) for h in linked]
    mask = bytearray(len(doc.w) + 1)
    for a, b in covered:
        mask[a:b] = b"\x01" * (b - a)
    w = doc.w
    starts, ends = doc.starts, doc.ends
    # Candidates: tokens right after a title or given name, and tokens whose (first) NER span is PER.
    cand: set[int] = set(_after_triggers(doc))
    in_per: set[int] = set()
    if ner_w:
        seen: set[int] = set()
        for a, b, t in ner_w:
            lo = bisect.bisect_left(starts, a)
            hi = bisect.bisect_right(ends, b)
            for i in range(lo, hi):
                if i in seen or not (a <= starts[i] and ends[i] <= b):
                    continue
                seen.add(i)
                if t == "PER":
                    in_per.add(i)
    cand |= in_per
    nw = len(starts)
    for i in sorted(cand):
        if i >= nw:
            continue
        s, e = starts[i], ends[i]
        tok = w[s:e]
        prev = w[starts[i - 1]:ends[i - 1]] if i else None
        after_given = prev in given
        after_title = prev in titles or (i > 1 and f"{w[starts[i - 2]:ends[i - 2]]} {prev}" in titles)
        if not (i in in_per or after_title or after_given) or mask[s] or mask[e - 1]:
            continue
        core = tok[1:] if lang == "ar" and tok[:1] in "وبلفك" and len(tok) > 5 else tok
        # A token may link to the surname of a person the document does not name otherwise only when
        # the NER model tags it as a person and a title or given name stands before it: either cue
        # alone let common words ("الأمن" after "مدير") and other people's first names through.
        wide = (after_title or after_given) and i in in_per
        eid = _fuzzy(tok, doc_names, index, prev, given, doc_choices, wide) or (
            _fuzzy(core, doc_names, index, prev, given, doc_choices, wide) if core != tok else None)
        if eid is None:
            continue
        start = s
        if (after_given and prev is not None and ends[i - 1] == s - 1
                and any(n.entity_id == eid for n in index.keys.get(prev, ()))):
            start = starts[i - 1]
        linked.append(_Hit(start, e, tok, [], entity_id=eid, source="fuzzy"))
        covered.append((start, e))
        mask[start:e] = b"\x01" * (e - start)
        established.setdefault(eid, s)

    # NER spans the gazetteer does not cover: new entities with stable ids.
    for a, b, t in ner_w:
        if t not in gz.TYPES:
            continue
        # Every covered span is non-empty and marked in mask; an empty NER span needs the interval test.
        if mask.find(1, a, b) >= 0 if a < b else any(x < b and a < y for x, y in covered):
            continue
        words = doc.w[a:b].split()
        while words and (words[0] in titles or f"{words[0]} {words[1] if len(words) > 1 else ''}" in titles):
            words = words[2:] if f"{words[0]} {words[1] if len(words) > 1 else ''}" in titles else words[1:]
        if not words:
            continue
        name = " ".join(words)
        # A lone nisba adjective (وسعودية, الإيرانية) or a fragment is not a new place or organisation.
        if len(name) < 3 or (len(words) == 1 and t != "PER" and name.endswith(_NISBA)):
            continue
        a2 = doc.w.find(name, a, b)
        if a2 < 0:
            continue
        known = _index(lang).keys.get(_key(name, "ar" if lang == "ar" else "fa"))
        eid = None
        if known:
            eid = next((n.entity_id for n in known if ents[n.entity_id].type == t), None)
        if eid is None:
            eid = new_entity_id(name, t)
        linked.append(_Hit(a2, a2 + len(name), name, [], entity_id=eid, source="ner", etype=t))
        covered.append((a2, a2 + len(name)))
        mask[a2:a2 + len(name)] = b"\x01" * len(name)

    return _assemble(doc, linked, exclude, language)


def _assemble(doc: _Doc, hits: list[_Hit], exclude: Sequence[tuple[int, int]], language: str) -> list[dict]:
    ents = gz.entities()
    by_id: dict[str, dict] = {}
    order: list[str] = []
    # "Does a span of exclude contain s": spans by start, with the furthest end among the first k.
    spans = sorted(exclude)
    ex_starts = [a for a, _ in spans]
    ex_reach = list(accumulate((b for _, b in spans), max))
    for h in sorted(hits, key=lambda h: h.start):
        s, e = doc.to_source(h.start, h.end)
        if e <= s:
            continue
        k = bisect.bisect_right(ex_starts, s)
        if k and ex_reach[k - 1] > s:
            continue
        eid = h.entity_id
        assert eid is not None
        rec = by_id.get(eid)
        if rec is None:
            ent = ents.get(eid)
            if ent is not None:
                names = dict(ent.names)
                rec = {"id": eid, "type": ent.type, "names": names,
                       "name": names.get("en") or names.get(language) or doc.text[s:e],
                       "mention_count": 0, "mentions": [], "source": h.source}
            else:
                surface = doc.text[s:e]
                names = {language: surface} if language in ("ar", "fa") else {}
                rec = {"id": eid, "type": h.etype or "MISC", "names": names, "name": surface,
                       "mention_count": 0, "mentions": [], "source": "ner"}
            by_id[eid] = rec
            order.append(eid)
        elif rec["source"] != "gazetteer" and h.source == "gazetteer":
            rec["source"] = "gazetteer"
        rec["mentions"].append({"start": s, "end": e, "text": doc.text[s:e]})
    out = []
    for eid in order:
        rec = by_id[eid]
        rec["mention_count"] = len(rec["mentions"])
        out.append(rec)
    return out


def resolve_name(name: str, *, language: str | None = None) -> dict | None:
    """Look a phrase up in the gazetteer (exact on the match form, clitics and ال allowed).

    Returns:
        ``{"id", "type", "names", "name"}`` of the entity, or None when no name matches the whole phrase.
    """
    lang = language if language in ("ar", "fa") else "any"
    index = _index(lang)
    k = _GAP_RE.sub(" ", match_key(name)).strip().lower()
    candidates = [k, _strip_al(k)]
    for p in sorted(_AR_PREFIXES, key=len, reverse=True):
        if lang != "fa" and k.startswith(p) and len(k) - len(p) >= 3:
            candidates += [k[len(p):], _strip_al(k[len(p):])]
            if p.endswith("ال"):
                candidates.append(k[len(p):])
    for c in candidates:
        names = index.keys.get(c)
        if names:
            ent = gz.entities()[names[0].entity_id]
            return {"id": ent.id, "type": ent.type, "names": dict(ent.names),
                    "name": ent.names.get("en", name)}
    return None


def get_entity(entity_id: str) -> dict | None:
    """The gazetteer entry for an id (``names``, ``aliases`` per language, ``attrs``), or None."""
    ent = gz.get_entity(entity_id)
    if ent is None:
        return None
    d = ent.as_dict()
    d["name"] = ent.names.get("en") or next(iter(ent.names.values()), entity_id)
    return d
