"""Score ``khabar enrich`` output against a gold file (the format of seeds.gold.json).

Fields and how they are matched (strings are compared in match form, :func:`khabar.normalize.match_key`):

- ``title``, ``published_at``, ``byline``, ``language``: per article, where the gold has the key;
  a gold ``null`` title/date is right only if nothing is predicted.
- ``boilerplate``: a gold line is found if a removed item has the same text (or contains it);
  a removed item matching no gold boilerplate/duplicate/title line is a false positive, and one
  that is a body line of the text is also counted in ``body_lines_removed``.
- ``duplicate_lines``: right if the line is left at most once in the body.
- ``entities``: a gold entity is found when a predicted entity of the same type has a mention whose
  text equals one of the gold ``forms``; recall counts required entities, precision counts predicted
  entities matching any gold entity (required or optional). ``entity_id_consistency``: share of gold
  entities (by English ``name``) found in several articles that map to one predicted id everywhere.
- ``quotes``: matched by speaker (speaker text equals/contains one of ``speaker_forms``, or the
  speaker's ``name`` is the gold speaker) and by the first words of the quote; recall over required
  quotes; ``not_quotes`` reported as quotes count as false positives (and in ``not_quotes_reported``).
- ``claims``: gold claims with the same ``claim`` text across articles must share one predicted
  claim id; a (article, claim) pair is found when the article carries that id.
- ``stories`` (pairs of articles in one story) and ``text_reuse`` (article -> reused article) when
  the gold has them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

from khabar.normalize import match_key

__all__ = ["main", "score"]

_STRIP = "\"'.,;:!?«»“”‘’()[]-– "


def _k(s: Any) -> str:
    return match_key(str(s)).strip(_STRIP) if s is not None else ""


class _PRF:
    def __init__(self) -> None:
        self.tp = self.fp = self.fn = 0

    def as_dict(self) -> dict[str, float | int]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn,
                "precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4)}


def _article_key(seed: str) -> str:
    return seed.rsplit(".", 1)[0] if seed.endswith(".txt") else seed


def _find_article(seed: str, by_id: Mapping[str, dict]) -> dict | None:
    stem = _article_key(seed)
    if stem in by_id:
        return by_id[stem]
    short = stem.split("_", 1)[0]
    return by_id.get(short)


def _short(seed: str) -> str:
    return _article_key(seed).split("_", 1)[0]


def _score_value(prf: _PRF, gold: Any, pred: Any, norm: bool = True) -> bool:
    g = _k(gold) if norm and gold is not None else gold
    p = _k(pred) if norm and pred not in (None, "") else (pred or None)
    if g in (None, ""):
        if p not in (None, ""):
            prf.fp += 1
            return False
        return True
    if p == g:
        prf.tp += 1
        return True
    prf.fn += 1
    if p not in (None, ""):
        prf.fp += 1
    return False


def _entity_matches(pred: dict, gold: dict) -> bool:
    if pred.get("type") != gold.get("type"):
        return False
    forms = {_k(f) for f in gold.get("forms", [])}
    return any(_k(m.get("text")) in forms for m in pred.get("mentions", []))


def _quote_matches(pred: dict, gold: dict) -> bool:
    sp = pred.get("speaker") or {}
    sp_text = _k(sp.get("text"))
    forms = [_k(f) for f in gold.get("speaker_forms", [])]
    speaker_ok = bool(sp_text) and any(f and (f == sp_text or f in sp_text or sp_text in f) for f in forms)
    if not speaker_ok and sp.get("name"):
        speaker_ok = _k(sp.get("name")) == _k(gold.get("speaker"))
    if not speaker_ok:
        return False
    start = _k(gold.get("quote_starts_with"))
    return _k(pred.get("text")).startswith(start)


def score(articles: Sequence[dict], gold: Mapping) -> dict:
    """Score predicted articles against a gold annotation.

    Args:
        articles: article records as ``khabar enrich`` writes them.
        gold: the gold file's object (``{"documents": [...], "stories": [...], ...}``).

    Returns:
        ``{"fields": {field: {"tp","fp","fn","precision","recall","f1"}}, "extra": {...},
        "articles": {seed: details}}``.
    """
    by_id = {str(a.get("id")): a for a in articles}
    f: dict[str, _PRF] = defaultdict(_PRF)
    details: dict[str, dict] = {}
    extra: Counter[str] = Counter()
    entity_ids: dict[str, set[str]] = defaultdict(set)
    entity_articles: Counter[str] = Counter()
    claim_ids: dict[str, list[set[str]]] = defaultdict(list)
    claim_pairs: list[tuple[str, str, set[str]]] = []
    all_pred_claims: list[str] = []

    for doc in gold.get("documents", []):
        seed = doc["seed"]
        art = _find_article(seed, by_id)
        d: dict[str, Any] = {"found": art is not None}
        details[seed] = d
        if art is None:
            for key in ("title", "published_at", "language"):
                if doc.get(key) is not None:
                    f[key].fn += 1
            f["boilerplate"].fn += len(doc.get("boilerplate_lines", []))
            continue
        if "title" in doc:
            d["title_ok"] = _score_value(f["title"], doc["title"], art.get("title"))
        if "published_at" in doc:
            d["published_at_ok"] = _score_value(f["published_at"], doc["published_at"],
                                                art.get("published_at"), norm=False)
        if "byline" in doc:
            d["byline_ok"] = _score_value(f["byline"], doc["byline"], art.get("byline"))
        if "language" in doc:
            d["language_ok"] = _score_value(f["language"], doc["language"], art.get("language"), norm=False)

        # Boilerplate lines.
        removed = [(_k(r.get("text")), r) for r in art.get("boilerplate", [])]
        gold_bp = [_k(x) for x in doc.get("boilerplate_lines", [])]
        allowed = set(gold_bp) | {_k(x) for x in doc.get("duplicate_lines", [])}
        if doc.get("title"):
            allowed.add(_k(doc["title"]))
        missed = []
        for g in gold_bp:
            if any(rk == g or (g and g in rk) for rk, _ in removed):
                f["boilerplate"].tp += 1
            else:
                f["boilerplate"].fn += 1
                missed.append(g)
        wrong = []
        for rk, r in removed:
            if rk in allowed or any(g and g in rk for g in allowed):
                continue
            f["boilerplate"].fp += 1
            wrong.append(r.get("text"))
            extra["body_lines_removed"] += 1
        d["boilerplate_missed"], d["boilerplate_wrong"] = missed, wrong

        body = _k(art.get("body"))
        for line in doc.get("duplicate_lines", []):
            if body.count(_k(line)) <= 1:
                f["duplicate_lines"].tp += 1
            else:
                f["duplicate_lines"].fn += 1

        # Entities.
        if "entities" in doc:
            preds = art.get("entities", [])
            matched_pred: set[int] = set()
            missed_e = []
            for ge in doc["entities"]:
                hits = [i for i, pe in enumerate(preds) if _entity_matches(pe, ge)]
                matched_pred.update(hits)
                if hits:
                    entity_articles[ge["name"]] += 1
                    entity_ids[ge["name"]].update(str(preds[i].get("id")) for i in hits[:1])
                if ge.get("required", True):
                    if hits:
                        f["entities"].tp += 1
                    else:
                        f["entities"].fn += 1
                        missed_e.append(ge["name"])
            unwanted = [pe.get("id") for i, pe in enumerate(preds) if i not in matched_pred]
            f["entities"].fp += len(unwanted)
            d["entities_missed"], d["entities_unwanted"] = missed_e, unwanted

        # Quotes.
        if "quotes" in doc:
            preds = art.get("quotes", [])
            used: set[int] = set()
            missed_q = []
            for gq in doc["quotes"]:
                hit = next(
                    (i for i, pq in enumerate(preds) if i not in used and _quote_matches(pq, gq)), None
                )
                if hit is not None:
                    used.add(hit)
                    if gq.get("required", True):
                        f["quotes"].tp += 1
                elif gq.get("required", True):
                    f["quotes"].fn += 1
                    missed_q.append(gq.get("quote_starts_with"))
            not_q = {_k(x) for x in doc.get("not_quotes", [])}
            for i, pq in enumerate(preds):
                if i in used:
                    continue
                f["quotes"].fp += 1
                if _k(pq.get("text")) in not_q:
                    extra["not_quotes_reported"] += 1
            d["quotes_missed"] = missed_q

        # Claims.
        if "claims" in doc:
            pids = {str(c.get("id")) for c in art.get("claims", [])}
            all_pred_claims.extend(pids)
            for gc in doc["claims"]:
                claim_ids[_k(gc["claim"])].append(pids)
                claim_pairs.append((seed, _k(gc["claim"]), pids))

    # Claims: the id most articles of a gold claim share stands for it.
    chosen: dict[str, str | None] = {}
    for claim, sets in claim_ids.items():
        c = Counter(i for s in sets for i in s)
        chosen[claim] = c.most_common(1)[0][0] if c else None
    for _seed, claim, pids in claim_pairs:
        if chosen[claim] is not None and chosen[claim] in pids:
            f["claims"].tp += 1
        else:
            f["claims"].fn += 1
    if claim_pairs:
        good = set(v for v in chosen.values() if v)
        f["claims"].fp += sum(1 for i in all_pred_claims if i not in good)

    # Entity id consistency across articles.
    multi = [n for n, k in entity_articles.items() if k > 1]
    consistency = (sum(1 for n in multi if len(entity_ids[n]) == 1) / len(multi)) if multi else None

    # Stories: pairs of articles in the same story.
    if gold.get("stories"):
        story_of = {}
        for s in gold["stories"]:
            for a in s["articles"]:
                story_of[a] = id(s)
        seeds = [_short(doc["seed"]) for doc in gold.get("documents", [])]
        pred_story = {}
        for doc in gold.get("documents", []):
            art = _find_article(doc["seed"], by_id)
            pred_story[_short(doc["seed"])] = art.get("story_id") if art else None
        for a, b in combinations(seeds, 2):
            g_same = a in story_of and story_of.get(a) == story_of.get(b)
            p_same = pred_story[a] is not None and pred_story[a] == pred_story[b]
            if g_same and p_same:
                f["stories"].tp += 1
            elif g_same:
                f["stories"].fn += 1
            elif p_same:
                f["stories"].fp += 1

    if gold.get("text_reuse"):
        gold_pairs = {(r["article"], r["reuses"]) for r in gold["text_reuse"]}
        pred_pairs = set()
        for doc in gold.get("documents", []):
            art = _find_article(doc["seed"], by_id)
            for r in (art or {}).get("reuses", []) or []:
                pred_pairs.add((_short(doc["seed"]), _short(str(r.get("article")))))
        f["text_reuse"].tp += len(gold_pairs & pred_pairs)
        f["text_reuse"].fn += len(gold_pairs - pred_pairs)
        f["text_reuse"].fp += len(pred_pairs - gold_pairs)

    return {
        "fields": {k: v.as_dict() for k, v in sorted(f.items())},
        "extra": {
            "body_lines_removed": extra["body_lines_removed"],
            "not_quotes_reported": extra["not_quotes_reported"],
            "entity_id_consistency": None if consistency is None else round(consistency, 4),
        },
        "articles": details,
    }


def check_floors(result: Mapping, floors: Mapping) -> list[str]:
    """Return the failures of ``result`` against ``floors``.

    ``floors`` maps a field to ``{"precision"|"recall"|"f1": minimum}``, and ``extra`` to maxima
    such as ``{"body_lines_removed": 0}`` (or minima for ``entity_id_consistency``).
    """
    failures = []
    for field_name, mins in floors.items():
        if field_name == "extra":
            for k, limit in mins.items():
                v = result["extra"].get(k)
                if k == "entity_id_consistency":
                    if v is not None and v < limit:
                        failures.append(f"extra.{k} = {v} < {limit}")
                elif v is not None and v > limit:
                    failures.append(f"extra.{k} = {v} > {limit}")
            continue
        got = result["fields"].get(field_name)
        if got is None:
            failures.append(f"{field_name}: not scored")
            continue
        for metric, m in mins.items():
            if got[metric] < m:
                failures.append(f"{field_name}.{metric} = {got[metric]} < {m}")
    return failures


def _read_jsonl(path: str) -> list[dict]:
    fh = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    try:
        return [json.loads(line) for line in fh if line.strip()]
    finally:
        if fh is not sys.stdin:
            fh.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``khabar eval PRED.jsonl --gold GOLD.json [--floors F.json] [--json]``."""
    ap = argparse.ArgumentParser(prog="khabar eval", description="Score khabar enrich output against gold.")
    ap.add_argument("pred", help="enrich output, JSON lines ('-' for stdin)")
    ap.add_argument("--gold", required=True, help="gold file in the format of seeds.gold.json")
    ap.add_argument("--floors", help="JSON file of minimum scores; exit 1 if any is missed")
    ap.add_argument("--json", action="store_true", help="print the full result as JSON")
    args = ap.parse_args(argv)
    result = score(_read_jsonl(args.pred), json.loads(Path(args.gold).read_text(encoding="utf-8")))
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        print(f"{'field':<18}{'P':>8}{'R':>8}{'F1':>8}{'tp':>6}{'fp':>6}{'fn':>6}")
        for name, v in result["fields"].items():
            print(f"{name:<18}{v['precision']:>8.3f}{v['recall']:>8.3f}{v['f1']:>8.3f}"
                  f"{v['tp']:>6}{v['fp']:>6}{v['fn']:>6}")
        for k, v in result["extra"].items():
            print(f"{k}: {v}")
    if args.floors:
        failures = check_floors(result, json.loads(Path(args.floors).read_text(encoding="utf-8")))
        for x in failures:
            print(f"FLOOR MISSED: {x}", file=sys.stderr)
        return 1 if failures else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
