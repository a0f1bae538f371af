"""Stories, copies and text reuse across articles, languages and sources.

Pure functions over enriched article records (see :mod:`khabar.enrich`); no Beam, no I/O.

* :func:`signature` reduces an article to what linking needs, language-independent where it can be:
  the claim ids and the article's *story key* (its best-supported claim), canonical entity ids,
  numbers (digits of every script made ASCII), per-paragraph feature sets (entity ids, numbers,
  claim ids, speakers of quotes in that paragraph, each with offsets into the input text), and
  MinHash sketches of the text (whole body and each paragraph) with LSH band keys for lookup.
  It is plain JSON, so the streaming pipeline stores it with the article in Elasticsearch.
* :func:`link` decides, for one article and the signatures of candidate articles, its
  ``story_id``, ``duplicate_of`` and ``reuses``.
* :func:`link_all` does the same within a set of articles (``khabar enrich`` over many files).

The story rule (what makes ids order-independent):

1. A near copy takes the story of the article it copies (``duplicate_of``).
2. Otherwise an article whose claims are well supported (at least :attr:`Params.min_claim_support`
   evidence spans and quotes) belongs to the story of its best-supported claim:
   ``story_id = "story-" + sha1(claim_id)[:16]``. Claim ids are canonical and language-independent
   (``claim:meet:per:qasem-soleimani+per:vladimir-putin@loc:moscow``), so the id depends only on the
   article itself: any arrival order gives the same ids, months apart or not, and articles that
   merely share entities (same people, another event) get other stories.
3. An article without such a claim joins the story of a related candidate: one it copies, reuses
   passages of (or is reused by), or that is textually close, or shares numbers and entities within
   :attr:`Params.story_window_days` days. Candidates whose story comes from a claim are preferred, then
   the earliest by (published date, id). Without any, the article starts its own story,
   ``"story-" + sha1("article:" + id)[:16]``; a later related article joins it (the streaming case).
   :func:`link_all` processes a set in (published date, id) order, so a set gets the same ids in any
   input order; in a stream, rule 3 follows arrival order when articles arrive out of date order.

Copies and reuse:

* ``duplicate_of``: same language and MinHash Jaccard of word 3-shingles of the body at least
  :attr:`Params.duplicate_jaccard`. It points to the earliest article of the copy group.
* ``reuses``: paragraphs are paired when their text is close (same language, MinHash of word
  2-shingles) or when their language-independent features agree (weighted Jaccard, weights from
  how rare a feature is among the two articles' paragraphs, so features shared by the whole story
  count little). Reuse needs an in-order chain of at least :attr:`Params.reuse_min_paragraphs`
  paired paragraphs (translation and copy-editing keep paragraph order; two reports of the same
  event share a paragraph or two, not a chain). The reusing side is the later article by date;
  without dates, the one whose text is less covered by the pairing (it adds its own material);
  then arrival (:func:`link`) or id (:func:`link_all`).

Example:
    >>> a = {"id": "a", "language": "ar", "body": "نفى الكرملين اللقاء في موسكو", "entities": [],
    ...      "quotes": [], "claims": []}
    >>> link(a, [])["story_id"] == link(a, [])["story_id"]
    True
"""

from __future__ import annotations

import hashlib
import math
import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

import numpy as np
from datasketch import MinHash

from khabar.normalize import normalize

__all__ = ["SIGNATURE_VERSION", "Params", "link", "link_all", "lookup_keys", "signature", "story_id_for"]

SIGNATURE_VERSION = 1
_DOC_PERM = 64
_PARA_PERM = 32
_BANDS = 16  # 16 bands x 4 rows over the 64 body permutations
_ROWS = _DOC_PERM // _BANDS
_SCHEME = "affine32"

# Digits of every script to ASCII, so ۱۳۰۰ / ١٣٠٠ / 1300 are one number.
_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
_NUMBER_RE = re.compile(r"\d+(?:[.,٫٬]\d+)*")
_THOUSANDS_RE = re.compile(r"[,٬](?=\d{3}(?:\D|$))")
_WORD_RE = re.compile(r"\w+")
_PARA_SPLIT_RE = re.compile(r"[^\n]+")


@dataclass(frozen=True)
class Params:
    """Thresholds of the linking rules (defaults measured on the samples, see tests/unit/test_stories.py).

    Attributes:
        min_claim_support: evidence spans + quotes a claim needs to name the article's story.
        duplicate_jaccard: body MinHash Jaccard from which a same-language article is a copy.
        para_text_jaccard: paragraph MinHash Jaccard from which two paragraphs are a textual match.
        para_feature_score: weighted feature Jaccard from which two paragraphs match across languages.
        para_min_shared: features two paragraphs must share for a feature match.
        reuse_min_paragraphs: in-order paired paragraphs that make a reuse.
        reuse_min_mean: mean pair score of such a chain.
        coverage_margin: coverage difference that decides the reuse direction without dates.
        near_text_jaccard: body Jaccard that relates two articles for rule 3.
        story_window_days: time window for rule 3's entity-and-number relation.
        window_days: how far apart in time candidates are looked up at all.
        max_candidates: candidates per article.
    """

    min_claim_support: int = 2
    duplicate_jaccard: float = 0.7
    para_text_jaccard: float = 0.5
    para_feature_score: float = 0.45
    para_min_shared: int = 3
    reuse_min_paragraphs: int = 3
    reuse_min_mean: float = 0.6
    coverage_margin: float = 0.05
    near_text_jaccard: float = 0.3
    story_window_days: int = 3
    window_days: int = 365
    max_candidates: int = 30


DEFAULT = Params()


@lru_cache(maxsize=4)
def _permutations(num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = MinHash(num_perm=num_perm, seed=1, scheme=_SCHEME).permutations
    return np.asarray(a, dtype=np.uint32), np.asarray(b, dtype=np.uint32)


# datasketch's affine32 scheme, vectorised: sha1 -> first 4 bytes little-endian -> MurmurHash3
# finalizer -> a * h + b mod 2^32, minimum per permutation. Building a MinHash object per paragraph
# cost more than the hashing; tests/unit/test_stories.py checks the values equal datasketch's.
_FMIX = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35), np.uint32(16))


def _hash32(shingles: Iterable[str]) -> np.ndarray:
    sha1 = hashlib.sha1
    raw = b"".join(sha1(s.encode("utf-8")).digest()[:4] for s in shingles)
    hv = np.frombuffer(raw, dtype="<u4").astype(np.uint32)
    s1, m1, s2, m2, s3 = _FMIX
    with np.errstate(over="ignore"):
        hv = hv ^ (hv >> s1)
        hv = hv * m1
        hv = hv ^ (hv >> s2)
        hv = hv * m2
        return hv ^ (hv >> s3)


def _minhash_many(groups: Sequence[Iterable[str]], num_perm: int) -> list[list[int] | None]:
    """MinHash values of each group of shingles (None for an empty group), in one numpy pass."""
    sets = [set(g) for g in groups]
    out: list[list[int] | None] = [None] * len(sets)
    nonempty = [k for k, g in enumerate(sets) if g]
    if not nonempty:
        return out
    hv = _hash32([x for k in nonempty for x in sets[k]])
    a, b = _permutations(num_perm)
    with np.errstate(over="ignore"):
        phv = hv[:, None] * a[None, :] + b[None, :]
    starts = np.cumsum([0] + [len(sets[k]) for k in nonempty[:-1]])
    mins = np.minimum.reduceat(phv, starts, axis=0).tolist()
    for k, row in zip(nonempty, mins, strict=True):
        out[k] = row
    return out


def _minhash(shingles: Iterable[str], num_perm: int) -> list[int] | None:
    return _minhash_many([shingles], num_perm)[0]


def _jaccard(a: Sequence[int] | None, b: Sequence[int] | None) -> float:
    if not a or not b or len(a) != len(b):
        return 0.0
    # Equal to np.mean of the 0/1 matches: an exact count divided by the length.
    return sum(1 for x, y in zip(a, b, strict=True) if x == y) / len(a)


def _shingles(tokens: Sequence[str], n: int) -> list[str]:
    if len(tokens) < n:
        return [" ".join(tokens)] if tokens else []
    return [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def _tokens(text: str) -> list[str]:
    return _WORD_RE.findall(normalize(text).match.translate(_DIGITS))


def numbers_in(text: str) -> list[str]:
    """Numbers written in ``text`` in any digit script, as ASCII strings without thousands separators.

    Single digits are left out: they are too common to tie two texts together.

    >>> numbers_in("۱٬۳۰۰ نیرو و 1,500 جنگجو و ٣ أيام")
    ['1300', '1500']
    """
    out = []
    for m in _NUMBER_RE.finditer(text.translate(_DIGITS)):
        n = _THOUSANDS_RE.sub("", m.group()).replace("٫", ".").lstrip("0") or "0"
        if len(n) >= 2:
            out.append(n)
    return out


def story_id_for(key: str) -> str:
    """The story id of a story key (a claim id, or ``article:<id>`` for an article's own story)."""
    return "story-" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


def _date(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _paragraphs(article: Mapping[str, Any], text: str | None) -> list[tuple[int | None, int | None, str]]:
    """(start, end, text) of the body paragraphs; offsets index the input text when known."""
    spans = article.get("body_spans")
    if spans:
        if text is not None:
            return [(int(s), int(e), text[int(s) : int(e)]) for s, e in spans]
        parts = (article.get("body") or "").split("\n\n")
        if len(parts) == len(spans):
            return [(int(s), int(e), p) for (s, e), p in zip(spans, parts, strict=True)]
        return [(int(s), int(e), "") for s, e in spans]
    if text is not None:
        return [(m.start(), m.end(), m.group()) for m in _PARA_SPLIT_RE.finditer(text) if m.group().strip()]
    return [(None, None, p) for p in (article.get("body") or "").split("\n\n") if p.strip()]


def _claim_support(article: Mapping[str, Any]) -> dict[str, int]:
    support: dict[str, int] = {}
    for c in article.get("claims") or []:
        cid = c.get("id")
        if cid:
            support[cid] = support.get(cid, 0) + max(1, len(c.get("evidence") or []))
    for q in article.get("quotes") or []:
        cid = q.get("claim_id")
        if cid:
            support[cid] = support.get(cid, 0) + 1
    return support


def _paragraph_tokens(texts: Sequence[str]) -> list[list[str]]:
    """Match-form word tokens of each paragraph, normalising the paragraphs in one call.

    Paragraphs are joined with a blank line (a word never spans it) and each token goes to the
    paragraph its first source character is in; this equals ``_tokens`` of each paragraph.
    """
    joined = "\n\n".join(texts)
    starts = []
    pos = 0
    for t in texts:
        starts.append(pos)
        pos += len(t) + 2
    norm = normalize(joined)
    match, src = norm.match.translate(_DIGITS), norm.match_map
    out: list[list[str]] = [[] for _ in texts]
    for m in _WORD_RE.finditer(match):
        k = bisect_right(starts, src[m.start()]) - 1
        out[k].append(m.group())
    return out


def _locator(paras: Sequence[tuple[int | None, int | None, str]]) -> Any:
    """``pos -> indices of the paragraphs whose [start, end) holds pos`` (ints only, as offsets are)."""
    spans = [(s, e, k) for k, (s, e, _) in enumerate(paras) if s is not None and e is not None]
    ordered = all(spans[k][1] <= spans[k + 1][0] for k in range(len(spans) - 1)) and \
        all(s <= e for s, e, _ in spans)
    if ordered:
        begins = [s for s, _, _ in spans]

        def find(pos: Any) -> tuple[int, ...]:
            if not isinstance(pos, int):
                return ()
            i = bisect_right(begins, pos) - 1
            if i >= 0 and pos < spans[i][1]:
                return (spans[i][2],)
            return ()
        return find

    def scan(pos: Any) -> tuple[int, ...]:  # overlapping or unordered spans: check each one
        if not isinstance(pos, int):
            return ()
        return tuple(k for s, e, k in spans if s <= pos < e)
    return scan


def signature(article: Mapping[str, Any], text: str | None = None, params: Params = DEFAULT) -> dict[str, Any]:
    """The linking features of an enriched article, as plain JSON.

    Args:
        article: an article record of :func:`khabar.enrich.enrich` (``body_spans`` gives paragraph
            offsets into the input text; without them paragraphs come from ``text`` or ``body``).
        text: the message's input text, when the caller has it (paragraph text then comes from it).
        params: thresholds (only ``min_claim_support`` is used here).

    Returns:
        ``{"v", "id", "language", "published_at", "story_key", "claim_ids", "entities", "numbers",
        "minhash", "bands", "length", "paragraphs": [{"start", "end", "length", "features", "minhash"}]}``.
    """
    entities = article.get("entities") or []
    quotes = article.get("quotes") or []
    claims = article.get("claims") or []
    paras = _paragraphs(article, text)
    para_tokens = _paragraph_tokens([p for _, _, p in paras])
    feats_of: list[set[str]] = [{"n:" + n for n in numbers_in(p)} for _, _, p in paras]
    all_numbers = {f[2:] for fs in feats_of for f in fs}
    where = _locator(paras)

    def add(pos: Any, feature: str) -> None:
        for k in where(pos):
            feats_of[k].add(feature)

    for ent in entities:
        for m in ent.get("mentions") or []:
            add(m.get("start"), "e:" + ent["id"])
    for q in quotes:
        if q.get("claim_id"):
            add(q.get("start"), "c:" + q["claim_id"])
        for role in ("speaker", "via"):
            eid = (q.get(role) or {}).get("entity_id")
            if eid:
                add(q.get("start"), "s:" + eid)
    for c in claims:
        if c.get("id"):
            for ev in c.get("evidence") or []:
                add(ev.get("start"), "c:" + c["id"])
    para_hashes = _minhash_many([_shingles(t, 2) if len(t) >= 4 else () for t in para_tokens], _PARA_PERM)
    paragraphs = []
    for (start, end, ptext), feats, ph in zip(paras, feats_of, para_hashes, strict=True):
        paragraphs.append({
            "start": start, "end": end, "length": len(ptext) if ptext else ((end or 0) - (start or 0)),
            "features": sorted(feats),
            "minhash": ph,
        })
    all_tokens = [t for ts in para_tokens for t in ts]
    support = _claim_support(article)
    story_key = None
    if support:
        best_n = max(support.values())
        if best_n >= params.min_claim_support:
            # Ties go to the lexically smallest claim id, so the choice does not depend on claim order.
            story_key = min(k for k, v in support.items() if v == best_n)
    doc_hash = _minhash(_shingles(all_tokens, 3), _DOC_PERM)
    bands = []
    if doc_hash:
        for b in range(_BANDS):
            chunk = ",".join(str(v) for v in doc_hash[b * _ROWS : (b + 1) * _ROWS])
            bands.append(f"{b}:" + hashlib.sha1(chunk.encode()).hexdigest()[:12])
    ent_counts = {e["id"]: len(e.get("mentions") or []) or 1 for e in entities if e.get("id")}
    return {
        "v": SIGNATURE_VERSION,
        "id": str(article.get("id")),
        "language": article.get("language"),
        "published_at": article.get("published_at"),
        "story_key": story_key,
        "claim_ids": sorted(support),
        "entities": dict(sorted(ent_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        "numbers": sorted(all_numbers),
        "minhash": doc_hash,
        "bands": bands,
        "length": sum(p["length"] for p in paragraphs),
        "paragraphs": paragraphs,
    }


def lookup_keys(sig: Mapping[str, Any], max_entities: int = 10) -> dict[str, list[str]]:
    """The index terms to find candidates of ``sig``: its claim ids, LSH bands and main entities."""
    return {
        "claim_ids": list(sig.get("claim_ids") or []),
        "story_bands": list(sig.get("bands") or []),
        "entity_ids": list(sig.get("entities") or {})[:max_entities],
    }


def _is_signature(obj: Mapping[str, Any]) -> bool:
    return obj.get("v") == SIGNATURE_VERSION and "paragraphs" in obj and "bands" in obj


# --- pairwise relations -----------------------------------------------------------------------------


@dataclass
class _Pair:
    duplicate: bool
    body_jaccard: float
    chain: list[tuple[int, int, float]]  # (paragraph of a, paragraph of b, score)
    cover_a: float
    cover_b: float
    near: bool

    @property
    def reuse(self) -> bool:
        return bool(self.chain)


def _feature_weights(pa: Sequence[Mapping[str, Any]], pb: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    df: dict[str, int] = {}
    for p in (*pa, *pb):
        for f in set(p["features"]):
            df[f] = df.get(f, 0) + 1
    n = len(pa) + len(pb)
    # Rare within the two articles = informative; numbers are the most translation-stable evidence.
    return {f: math.log((n + 1) / d) * (1.5 if f.startswith("n:") else 1.0) for f, d in df.items()}


def _pair_score(a: set[str], b: set[str], weights: Mapping[str, float], text_jaccard: float,
                params: Params) -> float:
    score = text_jaccard if text_jaccard >= params.para_text_jaccard else 0.0
    shared = a & b
    # Places alone (Iran, Russia, Syria...) are the backdrop of a whole region's news, not evidence.
    if len(shared) >= params.para_min_shared and any(not f.startswith("e:loc:") for f in shared):
        union = sum(weights[f] for f in a | b)
        fs = sum(weights[f] for f in shared) / union if union else 0.0
        if fs >= params.para_feature_score:
            score = max(score, fs)
    return float(score)


def _best_chain(scores: dict[tuple[int, int], float]) -> list[tuple[int, int, float]]:
    """The heaviest chain of pairs increasing in both paragraph indices (paragraph order kept)."""
    pairs = sorted(scores)
    best: list[tuple[float, int]] = []  # (total, previous index)
    for k, (i, j) in enumerate(pairs):
        total, prev = scores[(i, j)], -1
        for m in range(k):
            pi, pj = pairs[m]
            if pi < i and pj < j and best[m][0] + scores[(i, j)] > total:
                total, prev = best[m][0] + scores[(i, j)], m
        best.append((total, prev))
    if not best:
        return []
    k = max(range(len(best)), key=lambda x: (best[x][0], -x))
    chain = []
    while k >= 0:
        i, j = pairs[k]
        chain.append((i, j, scores[(i, j)]))
        k = best[k][1]
    return chain[::-1]


def _weighted_jaccard(a: Mapping[str, int], b: Mapping[str, int]) -> float:
    keys = set(a) | set(b)
    den = sum(max(a.get(k, 0), b.get(k, 0)) for k in keys)
    return sum(min(a.get(k, 0), b.get(k, 0)) for k in keys) / den if den else 0.0


@dataclass
class _Prepared:
    """Per-signature paragraph data that every comparison of that signature needs."""

    feats: list[set[str]]
    postings: dict[str, list[int]]  # feature -> paragraphs holding it, in order
    hashes: np.ndarray  # (paragraphs, _PARA_PERM) MinHash values, zero rows without a sketch
    has_hash: np.ndarray  # (paragraphs,) whether the row is a sketch


_PREPARED: dict[int, tuple[list[Any], _Prepared]] = {}
_PREPARED_MAX = 4096


def _prepare(paragraphs: list[Any]) -> _Prepared:
    """The :class:`_Prepared` of a ``paragraphs`` list, remembered by identity while it is cached.

    Candidates are usually the same objects from one article to the next (the pipeline's cache of
    recent signatures, the set of :func:`link_all`), so this is computed once per signature, not
    once per comparison. The entry keeps the list alive, so its ``id`` cannot be reused meanwhile;
    signatures are never modified in place.
    """
    hit = _PREPARED.get(id(paragraphs))
    if hit is not None and hit[0] is paragraphs:
        return hit[1]
    feats = [set(p["features"]) for p in paragraphs]
    postings: dict[str, list[int]] = {}
    for k, fs in enumerate(feats):
        for f in fs:
            postings.setdefault(f, []).append(k)
    ok = np.array([bool(p.get("minhash")) and len(p["minhash"]) == _PARA_PERM for p in paragraphs],
                  dtype=bool)
    hashes = np.zeros((len(paragraphs), _PARA_PERM), dtype=np.uint64)
    for k, p in enumerate(paragraphs):
        if ok[k]:
            hashes[k] = p["minhash"]
    prep = _Prepared(feats, postings, hashes, ok)
    if len(_PREPARED) >= _PREPARED_MAX:
        _PREPARED.clear()  # simple bound; a plain dict stays safe under the runner's threads
    _PREPARED[id(paragraphs)] = (paragraphs, prep)
    return prep


def _candidate_pairs(xa: _Prepared, xb: _Prepared, text_j: np.ndarray | None, params: Params
                     ) -> list[tuple[int, int]]:
    """Paragraph pairs whose :func:`_pair_score` can be above 0, in (i, j) order.

    A pair scores only with a text Jaccard at the threshold or at least ``para_min_shared`` shared
    features; every other pair scores exactly 0, so skipping it changes nothing.
    """
    if params.para_min_shared <= 0:
        return [(i, j) for i in range(len(xa.feats)) for j in range(len(xb.feats))]
    pairs: set[tuple[int, int]] = set()
    if text_j is not None:
        ii, jj = np.nonzero(text_j >= params.para_text_jaccard)
        pairs.update(zip(ii.tolist(), jj.tolist(), strict=True))
    shared = xa.postings.keys() & xb.postings.keys()
    if len(shared) >= params.para_min_shared:
        counts: dict[tuple[int, int], int] = {}
        for f in shared:
            for i in xa.postings[f]:
                for j in xb.postings[f]:
                    counts[(i, j)] = counts.get((i, j), 0) + 1
        pairs.update(ij for ij, n in counts.items() if n >= params.para_min_shared)
    return sorted(pairs)


def _compare(a: Mapping[str, Any], b: Mapping[str, Any], params: Params) -> _Pair:
    same_lang = bool(a.get("language")) and a.get("language") == b.get("language")
    body_j = _jaccard(a.get("minhash"), b.get("minhash")) if same_lang else 0.0
    duplicate = body_j >= params.duplicate_jaccard
    pa, pb = a.get("paragraphs") or [], b.get("paragraphs") or []
    chain: list[tuple[int, int, float]] = []
    cover_a = cover_b = 0.0
    if not duplicate and pa and pb:
        xa, xb = _prepare(pa), _prepare(pb)
        text_j = None
        if same_lang:
            # Mean of 0/1 over _PARA_PERM values is the exact count / _PARA_PERM, as np.mean gives.
            same = (xa.hashes[:, None, :] == xb.hashes[None, :, :]).sum(axis=2) / _PARA_PERM
            text_j = same * (xa.has_hash[:, None] & xb.has_hash[None, :])
        pairs = _candidate_pairs(xa, xb, text_j, params)
        scores = {}
        if pairs:
            weights = _feature_weights(pa, pb)
            for i, j in pairs:
                s = _pair_score(xa.feats[i], xb.feats[j], weights,
                                text_j[i, j] if text_j is not None else 0.0, params)
                if s > 0:
                    scores[(i, j)] = s
        chain = _best_chain(scores)
        if (len(chain) < params.reuse_min_paragraphs
                or sum(s for _, _, s in chain) / len(chain) < params.reuse_min_mean):
            chain = []
        if chain:
            la, lb = sum(p["length"] for p in pa) or 1, sum(q["length"] for q in pb) or 1
            cover_a = sum(pa[i]["length"] for i, _, _ in chain) / la
            cover_b = sum(pb[j]["length"] for _, j, _ in chain) / lb
    near = duplicate or bool(chain) or body_j >= params.near_text_jaccard
    if not near:
        da, db = _date(a.get("published_at")), _date(b.get("published_at"))
        if da and db and abs((da - db).days) <= params.story_window_days:
            shared_numbers = set(a.get("numbers") or []) & set(b.get("numbers") or [])
            near = len(shared_numbers) >= 2 and _weighted_jaccard(a.get("entities") or {},
                                                                  b.get("entities") or {}) >= 0.5
    return _Pair(duplicate, body_j, chain, cover_a, cover_b, near)


def _a_reuses_b(a: Mapping[str, Any], b: Mapping[str, Any], pair: _Pair, params: Params,
                a_arrived_later: bool | None) -> bool:
    """Whether ``a`` is the reusing side of a reuse pair (else ``b`` is)."""
    da, db = _date(a.get("published_at")), _date(b.get("published_at"))
    if da and db and da != db:
        return da > db
    if abs(pair.cover_a - pair.cover_b) >= params.coverage_margin:
        return pair.cover_a < pair.cover_b  # the reuser adds its own material around the borrowed part
    if a_arrived_later is not None:
        return a_arrived_later
    return str(a.get("id")) > str(b.get("id"))


def _passages(a: Mapping[str, Any], b: Mapping[str, Any], chain: Sequence[tuple[int, int, float]]
              ) -> list[dict[str, int]]:
    """Chain pairs as passages of ``a`` (start/end) and ``b`` (source_*), adjacent pairs merged."""
    pa, pb = a["paragraphs"], b["paragraphs"]
    runs: list[list[tuple[int, int]]] = []
    for i, j, _ in chain:
        if runs and runs[-1][-1][0] == i - 1 and runs[-1][-1][1] == j - 1:
            runs[-1].append((i, j))
        else:
            runs.append([(i, j)])
    out = []
    for run in runs:
        (i0, j0), (i1, j1) = run[0], run[-1]
        if pa[i0]["start"] is None or pb[j0]["start"] is None:
            continue
        out.append({"start": pa[i0]["start"], "end": pa[i1]["end"],
                    "source_start": pb[j0]["start"], "source_end": pb[j1]["end"]})
    return out


def _order_key(sig: Mapping[str, Any]) -> tuple[str, str]:
    d = _date(sig.get("published_at"))
    return (d.isoformat() if d else "9999-12-31", str(sig.get("id")))


def _decide(sig: Mapping[str, Any], candidates: Sequence[Mapping[str, Any]], params: Params, *,
            candidate_precedes: Any, a_arrived_later: bool | None, story_of: Any) -> dict[str, Any]:
    """Shared core of :func:`link` and :func:`link_all`."""
    originals = []
    related = []
    reuses = []
    for c in candidates:
        if str(c.get("id")) == sig["id"]:
            continue
        pair = _compare(sig, c, params)
        if pair.duplicate:
            if candidate_precedes(c):
                originals.append(c)
            related.append(c)
            continue
        if pair.reuse:
            if _a_reuses_b(sig, c, pair, params, a_arrived_later):
                passages = _passages(sig, c, pair.chain)
                if passages:
                    reuses.append((c, passages))
            related.append(c)
        elif pair.near:
            related.append(c)
    duplicate_of = None
    story_id = None
    if originals:
        first = min(originals, key=_order_key)
        duplicate_of = first.get("duplicate_of") or first["id"]  # point at the root of a copy group
        story_id = story_of(first)
    elif sig.get("story_key"):
        story_id = story_id_for(sig["story_key"])
    else:
        known = [c for c in related if story_of(c)]
        with_claim = [c for c in known if c.get("story_key")]
        pool = with_claim or known
        if pool:
            story_id = story_of(min(pool, key=_order_key))
    if not story_id:
        story_id = story_id_for("article:" + sig["id"])
    reuses.sort(key=lambda cp: _order_key(cp[0]))
    return {
        "story_id": story_id,
        "duplicate_of": duplicate_of,
        "reuses": [{"article": c["id"], "passages": p} for c, p in reuses],
    }


def link(article: Mapping[str, Any], candidates: Sequence[Mapping[str, Any]], params: Params = DEFAULT
         ) -> dict[str, Any]:
    """Story id, copy and reuse links of one article given candidate articles seen before it.

    Args:
        article: an enriched article record, or its :func:`signature`.
        candidates: signatures of earlier articles, each with the ``story_id`` (and
            ``duplicate_of``) it was given, e.g. from Elasticsearch or a cache of recent articles.
        params: thresholds.

    Returns:
        ``{"story_id", "duplicate_of", "reuses": [{"article", "passages": [{"start", "end",
        "source_start", "source_end"}]}]}``.
    """
    sig = article if _is_signature(article) else signature(article, params=params)
    own = _date(sig.get("published_at"))

    def candidate_precedes(c: Mapping[str, Any]) -> bool:
        # A candidate was seen first; only dates that say otherwise make the newcomer the original.
        d = _date(c.get("published_at"))
        return not (own and d and own < d)

    def story_of(c: Mapping[str, Any]) -> str:
        if c.get("story_id"):
            return str(c["story_id"])
        if c.get("story_key"):
            return story_id_for(c["story_key"])
        return story_id_for("article:" + str(c["id"]))

    usable = [c for c in candidates if _is_signature(c)]
    return _decide(sig, usable, params, candidate_precedes=candidate_precedes, a_arrived_later=True,
                   story_of=story_of)


def link_all(articles: Sequence[Mapping[str, Any]], params: Params = DEFAULT) -> list[dict[str, Any]]:
    """Story ids, copies and reuse within a set of articles, independent of their order.

    Args:
        articles: enriched article records (or their signatures); ids should be unique.
        params: thresholds.

    Returns:
        One ``{"id", "story_id", "duplicate_of", "reuses"}`` per article, in the input order.
    """
    sigs = [a if _is_signature(a) else signature(a, params=params) for a in articles]
    order = sorted(range(len(sigs)), key=lambda k: _order_key(sigs[k]))
    rank = {k: r for r, k in enumerate(order)}
    index: dict[str, list[int]] = {}
    for k, s in enumerate(sigs):
        for field, terms in lookup_keys(s).items():
            for t in terms:
                index.setdefault(f"{field}={t}", []).append(k)
    results: dict[int, dict[str, Any]] = {}
    pos_of = {id(s): k for k, s in enumerate(sigs)}

    def story_of(c: Mapping[str, Any]) -> str | None:
        k = pos_of[id(c)]
        if k in results:
            return results[k]["story_id"]
        if c.get("story_key"):
            return story_id_for(c["story_key"])
        return None  # a later article without a claim: it will join this one's story, not vice versa

    for k in order:
        s = sigs[k]
        hits: dict[int, float] = {}
        for field, terms in lookup_keys(s).items():
            boost = {"claim_ids": 3.0, "story_bands": 5.0}.get(field, 1.0)
            for t in terms:
                for other in index.get(f"{field}={t}", ()):
                    if other != k:
                        hits[other] = hits.get(other, 0.0) + boost
        own = _date(s.get("published_at"))
        picked = []
        for other in sorted(hits, key=lambda o: (-hits[o], rank[o])):
            d = _date(sigs[other].get("published_at"))
            if own and d and abs((own - d).days) > params.window_days:
                continue
            picked.append(other)
            if len(picked) >= params.max_candidates:
                break
        # Candidates are all related articles, earlier or later: copy and reuse direction come from
        # the (date, id) order and coverage, never from the position in the input.
        cands = []
        for other in picked:
            c = dict(sigs[other])
            if other in results:
                c["story_id"] = results[other]["story_id"]
                c["duplicate_of"] = results[other]["duplicate_of"]
            cands.append(c)
            pos_of[id(c)] = other

        def precedes(c: Mapping[str, Any], k: int = k) -> bool:
            return rank[pos_of[id(c)]] < rank[k]

        decided = _decide(s, cands, params, candidate_precedes=precedes, a_arrived_later=None,
                          story_of=story_of)
        results[k] = {"id": s["id"], **decided}
    return [results[k] for k in range(len(sigs))]
