"""Claims: what the quoted statements of an article assert, confirm or deny, with ids shared across articles.

A claim is a predicate (from the lexicons in ``khabar/data/quotes/claims.json``: meet/visit, …) with
its participants (person entity ids) and place (a location entity id). Its id is a deterministic
function of that canonical content, ``claim:meet:per:qasem-soleimani+per:vladimir-putin@loc:moscow``,
computed from one article alone, so the same claim made in Persian by Fars and in Arabic by Reuters,
or denied by the Kremlin, gets the same id in every article and a dashboard can group on it.

Within an article, mentions of the same event are merged before ids are made: a mention naming only
one participant ("سليماني زار موسكو") joins the article's claim that contains that participant, a
mention without a place takes the place the article gives the same participants elsewhere, and an
anaphoric one ("این گزارش را تکذیب کرد", "نفى التقرير", «نه») refers to the article's main claim.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import islice, pairwise
from pathlib import Path
from typing import Any

from khabar.normalize import match_key, normalize
from khabar.quotes import _char_positions, _keys, _word_alt, whole_text_hits

__all__ = ["claim_id", "extract_claims"]

DATA = Path(__file__).resolve().parent / "data" / "quotes" / "claims.json"
_WORD = r"[^\W_]"
_W_RE = re.compile(r"\w+")


@dataclass
class _Lex:
    triggers: dict[str, re.Pattern[str]]  # language -> regex with one named group per predicate
    trigger_keys: dict[str, list[str]]  # language -> the literal keys of its trigger regex
    summaries: dict[str, tuple[str, str]]
    participant_types: dict[str, frozenset[str]]
    locatives: frozenset[str]
    negation: dict[str, re.Pattern[str]]
    anaphoric: dict[str, re.Pattern[str]]


def _alt(forms: Sequence[str]) -> str:
    return "|".join(re.escape(k).replace(r"\ ", " ?") for k in _keys(forms)) or "(?!)"


def _words(forms: Sequence[str]) -> re.Pattern[str]:
    return re.compile(_word_alt([(_keys(forms), f"(?!{_WORD})")]))


@lru_cache(maxsize=1)
def _lex() -> _Lex:
    spec = json.loads(DATA.read_text(encoding="utf-8"))
    preds = spec["predicates"]
    triggers = {}
    trigger_keys = {}
    for lang in ("ar", "fa"):
        # Arabic triggers take the clitics و ب ل ف; they are matched as whole words after them.
        pre = _prefix_re(_TRIGGER_PREFIXES[lang])
        groups = "|".join(f"(?P<{p}>{_alt(v.get(lang, []))})" for p, v in preds.items())
        triggers[lang] = re.compile(rf"(?<!{_WORD}){pre}(?:{groups})(?!{_WORD})")
        trigger_keys[lang] = [k for v in preds.values() for k in _keys(v.get(lang, []))]
    default = frozenset(spec.get("participant_types", ["PER"]))
    ptypes = {p: frozenset(spec.get("participant_types_by_predicate", {}).get(p, default)) for p in preds}
    neg = {lang: _words(v) for lang, v in spec["negations"].items()}
    ana = {lang: _words(v) for lang, v in spec["anaphoric"].items()}
    summaries = {p: (v["summary"], v.get("summary_one", v["summary"])) for p, v in preds.items()}
    locs = frozenset(match_key(w) for v in spec.get("locatives", {}).values() for w in v)
    return _Lex(triggers=triggers, trigger_keys=trigger_keys, summaries=summaries, participant_types=ptypes,
                locatives=locs, negation=neg, anaphoric=ana)


# Arabic triggers take one clitic (و ف ب ل) or the article; Persian ones none.
_TRIGGER_PREFIXES = {"ar": ("و", "ف", "ب", "ل", "ال"), "fa": ()}


def _prefix_re(prefixes: Sequence[str]) -> str:
    """An optional group matching one of ``prefixes`` (longest first)."""
    if not prefixes:
        return ""
    return "(?:" + "|".join(re.escape(p) for p in sorted(prefixes, key=len, reverse=True)) + ")?"


def trigger_spec(lang: str) -> tuple[re.Pattern[str], list[str], int, str]:
    """The trigger regex of ``lang`` for :class:`khabar.quotes._Scanner`.

    Returns:
        The regex, its literal keys, the longest clitic prefix and the letters of the prefixes.
    """
    lex = _lex()
    prefixes = _TRIGGER_PREFIXES[lang]
    return (lex.triggers[lang], lex.trigger_keys[lang], max(map(len, prefixes), default=0),
            "".join(sorted(set("".join(prefixes)))))


def claim_id(predicate: str, participants: Sequence[str], place: str | None) -> str:
    """Deterministic claim id from the canonical content of a claim."""
    cid = f"claim:{predicate}:{'+'.join(sorted(set(participants)))}"
    return f"{cid}@{place}" if place else cid


@dataclass
class _Mention:
    pos: int  # match-form position of the trigger
    predicate: str
    participants: frozenset[str]
    place: str | None
    negated: bool
    lo: int = 0
    hi: int = 0
    quote: dict[str, Any] | None = None
    group: _Group | None = None


@dataclass
class _Group:
    predicate: str
    participants: frozenset[str]
    mentions: list[_Mention] = field(default_factory=list)

    @property
    def place(self) -> str | None:
        places = Counter(x.place for x in self.mentions if x.place)
        if not places:
            return None
        best = max(places.values())
        return next(x.place for x in self.mentions if x.place and places[x.place] == best)

    @property
    def first(self) -> int:
        return min(x.pos for x in self.mentions)


def _names(entities: Sequence[dict]) -> dict[str, str]:
    out = {}
    for ent in entities:
        names = ent.get("names") or {}
        out[str(ent.get("id"))] = str(names.get("en") or ent.get("name") or ent.get("id"))
    return out


def _summary(pred: str, participants: Sequence[str], place: str | None, names: dict[str, str]) -> str:
    many, one = _lex().summaries.get(pred, ("{participants} " + pred + "{place}",) * 2)
    ppl = [names.get(p, p) for p in sorted(participants)]
    if len(ppl) >= 2 and "{participants} met" in many:
        text = many.replace("{participants} met", f"{ppl[0]} met {' and '.join(ppl[1:])}")
    else:
        text = (one if len(ppl) == 1 else many).replace("{participants}", " and ".join(ppl) or "someone")
    text = text.replace("{place_name}", f" {names.get(place, place)}" if place else "")
    return text.replace("{place}", f" in {names.get(place, place)}" if place else "")


def extract_claims(text: str, language: str, entities: Sequence[dict], quotes: list[dict]) -> list[dict]:
    """Find the claims that the article's quotes make, and link the quotes to them.

    Args:
        text: the article text (offsets of ``entities`` and ``quotes`` index it).
        language: ``"ar"`` or ``"fa"`` (anything else tries both lexicons).
        entities: entities of the text (``id``, ``type``, ``names``, ``mentions``).
        quotes: output of :func:`khabar.quotes.extract_quotes`; ``claim_id`` and ``stance`` are set
            in place on the quotes that state a claim.

    Returns:
        One entry per claim and stance: ``{"id", "predicate", "participants", "place", "summary",
        "stance", "by", "by_names", "evidence"}``; ``by`` lists the entity ids of the speakers (or
        their affiliation) and of the outlets the statements came through.
    """
    # Claims come only from quotes with a speaker (step 2): without one there is nothing to report.
    if not text or not any(q.get("speaker") for q in quotes):
        return []
    lex = _lex()
    norm = normalize(text)
    m = norm.match
    mmap = norm.match_map

    def to_m(p: int) -> int:
        return bisect_left(mmap, p, 0, len(m))

    langs = [language] if language in lex.triggers else ["ar", "fa"]
    # Every claim needs a trigger: without one no quote gets a claim, so nothing else is worth doing.
    # extract_quotes has scanned this text for the triggers already (khabar.quotes.whole_text_hits).
    hits = whole_text_hits(m, tuple(langs))
    found = [mt for lang in langs for mt in hits["trigger", lang][0]]
    if not found:
        return []
    ents: list[tuple[int, int, str, str]] = []
    for ent in entities:
        for men in ent.get("mentions", ()) or ():
            ents.append((to_m(int(men["start"])), to_m(int(men["end"])), str(ent.get("id")),
                         str(ent.get("type", "")).upper()))
    # A speaker is not a participant of what they report.
    # Marked per position, not tested per speaker: an article has many quotes and many mentions.
    in_speaker = bytearray(len(m) + 1)
    for q in quotes:
        for w in (q.get("speaker"), q.get("via")):
            if w:
                a, b = to_m(w["start"]), to_m(w["end"])
                if b > a:
                    in_speaker[a:b] = b"\x01" * (b - a)
    ents = sorted(e for e in ents if not in_speaker[e[0]])

    def locative(e: tuple[int, int, str, str]) -> bool:
        # "در مسکو", "إلى موسكو", "في العاصمة موسكو", "بموسكو".
        words = _W_RE.findall(m[max(0, e[0] - 24) : e[0]])[-2:]
        if any(w in lex.locatives for w in words):
            return True
        return e[0] > 0 and m[e[0] - 1] == "ب" and (e[0] < 2 or not m[e[0] - 2].isalnum())

    bounds = _char_positions(m, ".!?\n")

    def sentence(p: int) -> tuple[int, int]:
        i = bisect_left(bounds, p)
        return (bounds[i - 1] + 1 if i else 0), (bounds[i] if i < len(bounds) else len(m))

    # 1. Every trigger in the text, with the participants and place nearest to it in its sentence.
    mentions: list[_Mention] = []
    by_sentence: dict[tuple[int, int], list[tuple[int, str]]] = {}
    for mt in found:
        pred = next(k for k, v in mt.groupdict().items() if v)
        by_sentence.setdefault(sentence(mt.start()), []).append((mt.start(), pred))
    for (ss, se), trigs in sorted(by_sentence.items()):
        trigs.sort()
        cuts = [ss] + [(a[0] + b[0]) // 2 for a, b in pairwise(trigs)] + [se]
        for k, (pos, pred) in enumerate(trigs):
            lo, hi = cuts[k], cuts[k + 1]
            types = lex.participant_types[pred]
            inside = [e for e in ents if lo <= e[0] and e[1] <= hi]
            parts = frozenset(e[2] for e in inside if (e[3] in types and e[3] == "PER") or
                              (e[3] in types and pred != "meet"))
            locs = [e for e in inside if e[3] in ("LOC", "GPE") and locative(e)]
            after = [e for e in locs if e[0] > pos]
            place = (after[0] if after else (locs[-1] if locs else None))
            negated = any(lex.negation[lg].search(m, lo, hi) for lg in langs if lg in lex.negation)
            mentions.append(_Mention(pos, pred, parts, place[2] if place and pred == "meet" else None,
                                     negated, lo, hi))

    # 2. Attach statements: the triggers inside a quote (or, for a bare «نه» or an anaphoric
    #    "التقرير", the sentence around it) are what the quote claims.
    attributed: list[_Mention] = []
    for q in quotes:
        if not q.get("speaker"):
            continue
        qs, qe = to_m(q["start"]), to_m(q["end"])
        own = [x for x in mentions if qs <= x.pos < qe]
        for x in own:
            # Only a negation inside the statement counts ("…لم تسمها" before it does not).
            lo, hi = max(x.lo, qs), min(x.hi, qe)
            neg = any(lex.negation[lg].search(m, lo, hi) for lg in langs if lg in lex.negation)
            attributed.append(_Mention(x.pos, x.predicate, x.participants - _speaker_ids(q), x.place,
                                       neg, x.lo, x.hi, q))
        if own:
            continue
        short = len(list(islice(_W_RE.finditer(q["text"]), 4))) <= 3
        ana = any(lex.anaphoric[lg].search(m, qs, qe) for lg in langs if lg in lex.anaphoric)
        if short or ana:
            ss, se = sentence(qs)
            near = [x for x in mentions if ss <= x.pos < se]
            pred = near[0].predicate if near else ("meet" if ana else None)
            if pred and (ana or near):
                parts = frozenset().union(*(x.participants for x in near)) if near else frozenset()
                attributed.append(_Mention(qs, pred, parts - _speaker_ids(q), None, False, qs, qe, q))

    # 3. Merge mentions of one event within the article (see module docstring).
    groups: dict[tuple[str, frozenset[str]], _Group] = {}
    everything = sorted([*mentions, *attributed], key=lambda x: (len(x.participants) < 2, x.pos))
    for x in everything:
        if len(x.participants) >= 2:
            g = groups.setdefault((x.predicate, x.participants), _Group(x.predicate, x.participants))
            g.mentions.append(x)
            x.group = g
    for x in everything:
        if len(x.participants) != 1:
            continue
        cands = [g for (p, parts), g in groups.items() if p == x.predicate and x.participants < parts
                 and (x.place is None or g.place in (None, x.place))]
        if cands:
            g = min(cands, key=lambda g: (len(g.participants), -len(g.mentions), g.first))
        else:
            g = groups.setdefault((x.predicate, x.participants), _Group(x.predicate, x.participants))
        g.mentions.append(x)
        x.group = g
    for x in everything:
        if x.participants or x.quote is None:
            continue
        cands = [g for (p, _parts), g in groups.items() if p == x.predicate and len(g.participants) >= 2]
        if cands:
            g = max(cands, key=lambda g: (len(g.mentions), -g.first))
            g.mentions.append(x)
            x.group = g

    # 4. Claims per (id, stance), and the quotes' claim ids.
    names = _names(entities)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for x in attributed:
        if x.group is None:
            continue
        g = x.group
        cid = claim_id(g.predicate, sorted(g.participants), g.place)
        q = x.quote
        assert q is not None
        stance = q.get("stance") or "assert"
        if x.negated and stance != "deny":
            stance = "deny"
        q["claim_id"] = cid
        q["stance"] = stance
        rec = out.setdefault((cid, stance), {
            "id": cid, "predicate": g.predicate, "participants": sorted(g.participants), "place": g.place,
            "summary": _summary(g.predicate, sorted(g.participants), g.place, names), "stance": stance,
            "by": [], "by_names": [], "evidence": [],
        })
        for who in (q.get("speaker"), q.get("via")):
            if not who:
                continue
            eid = who.get("entity_id") or who.get("affiliation")
            if eid and eid not in rec["by"]:
                rec["by"].append(eid)
            name = who.get("name")
            if name and name not in rec["by_names"]:
                rec["by_names"].append(name)
        ev = {"start": q["start"], "end": q["end"]}
        if ev not in rec["evidence"]:
            rec["evidence"].append(ev)
    return list(out.values())


def _speaker_ids(q: dict[str, Any]) -> frozenset[str]:
    ids = set()
    for who in (q.get("speaker"), q.get("via")):
        if who and who.get("entity_id"):
            ids.add(who["entity_id"])
    return frozenset(ids)
