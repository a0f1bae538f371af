"""A reproducible sample of real political news, with every quote printed for judging by hand.

The corpora under ``/work/shared/data/news`` are read in place (research-only: nothing is copied).
Eligible articles (political news: a politics/world category when the corpus has categories, else
political keywords) are split once into two disjoint halves by a hash of their id, DEV and TEST, and
each split is sampled with its own fixed seed. Tune on DEV only; TEST gives the reported figure.

Usage::

    .venv/bin/python benchmarks/quality/quotes_sample.py --split dev --lang ar --n 15
    .venv/bin/python benchmarks/quality/quotes_sample.py --split test --lang fa --n 15 --full

``--full`` prints the article text too (for the recall check: list what a reader sees as
attributed statements). ``--ids`` prints only the sampled article ids.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "news"
SEEDS = {"dev": 20240611, "test": 97531}
CONTEXT = 150
MIN_CHARS, MAX_CHARS = 400, 6000

# Persian corpora have categories; Arabic SaudiNewsNet has none, so keywords decide there.
FA_CATEGORIES = ("politics", "world", "foreign-policy", "سیاسی", "بین الملل", "بین\u200cالملل", "خارجی",
                 "سیاست خارجی", "سیاست", "مجلس")
AR_SPORT_SOURCES = {"arreyadi", "arriyadiyah"}
AR_KEYWORDS = re.compile(
    r"(?:الرئيس|وزير|الوزير|الحكومة|البرلمان|مجلس الأمن|الأمم المتحدة|إيران|الإيراني|سوريا|السوري|"
    r"اليمن|الحوثي|العراق|داعش|روسيا|الروسي|واشنطن|الأمريكي|الاتفاق النووي|المعارضة|حزب|الاحتلال|"
    r"الإسرائيلي|الفلسطيني|السفير|الخارجية|الدفاع|الانتخابات|التحالف)"
)
CORPORA = {"ar": ("saudinewsnet",), "fa": ("persian_news", "iranian_news")}


def text_of(rec: dict) -> str:
    return rec.get("content") or rec.get("body") or rec.get("text") or ""


def split_of(article_id: str) -> str:
    """DEV or TEST, fixed by the id alone so the halves never overlap whatever the seeds."""
    return "dev" if hashlib.sha1(article_id.encode()).digest()[0] % 2 == 0 else "test"


def _political(corpus: str, rec: dict, text: str) -> bool:
    if not MIN_CHARS <= len(text) <= MAX_CHARS:
        return False
    if corpus == "saudinewsnet":
        if rec.get("source") in AR_SPORT_SOURCES:
            return False
        return len(AR_KEYWORDS.findall(text[:3000])) >= 4
    cats = rec.get("category")
    if isinstance(cats, list):
        cats = "".join(cats) if all(len(c) <= 1 for c in cats) else " ".join(cats)
    cats = str(cats or "")
    return any(c in cats for c in FA_CATEGORIES)


def eligible(lang: str) -> Iterator[tuple[str, dict]]:
    """(article id, record) of every eligible article, in corpus order; ids are ``corpus#line``."""
    for corpus in CORPORA[lang]:
        seen: set[str] = set()
        with gzip.open(DATA / f"{corpus}.jsonl.gz", "rt", encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                rec = json.loads(line)
                text = text_of(rec)
                digest = hashlib.sha1(text.encode()).hexdigest()
                if digest in seen or not _political(corpus, rec, text):
                    continue
                seen.add(digest)
                yield f"{corpus}#{i}", rec


def sample(lang: str, split: str, n: int) -> list[tuple[str, dict]]:
    pool = [(aid, rec) for aid, rec in eligible(lang) if split_of(aid) == split]
    rng = random.Random(SEEDS[split])
    return rng.sample(pool, min(n, len(pool)))


def load(article_id: str) -> dict:
    """The record behind an id ``corpus#line``."""
    corpus, line = article_id.split("#")
    with gzip.open(DATA / f"{corpus}.jsonl.gz", "rt", encoding="utf-8") as fh:
        for i, raw in enumerate(fh):
            if i == int(line):
                return json.loads(raw)
    raise KeyError(article_id)


def message(article_id: str, rec: dict, lang: str) -> dict:
    return {"id": article_id, "text": text_of(rec), "source": rec.get("source"), "language": lang}


def _flat(s: str) -> str:
    return s.replace("\n", " ⏎ ")


def show(article_id: str, rec: dict, lang: str, full: bool) -> tuple[int, float]:
    from khabar.enrich import enrich

    msg = message(article_id, rec, lang)
    text = msg["text"]
    t0 = time.perf_counter()
    art = enrich(msg)
    dt = time.perf_counter() - t0
    print(f"\n=== {article_id}  sha1={hashlib.sha1(text.encode()).hexdigest()[:12]}  "
          f"chars={len(text)}  quotes={len(art['quotes'])}  lang={art['language']}")
    if full:
        print("--- text")
        print(text)
        print("---")
    for k, q in enumerate(art["quotes"]):
        s, e = q["start"], q["end"]
        sp = q.get("speaker") or {}
        via = q.get("via") or {}
        print(f"[{k}] {q['kind']} {s}-{e} cue={q.get('cue')!r} stance={q.get('stance')}")
        print(f"    speaker={sp.get('text')!r} @{sp.get('start')} id={sp.get('entity_id')} "
              f"name={sp.get('name')!r}  via={via.get('name') or via.get('text')}")
        print(f"    ctx: {_flat(text[max(0, s - CONTEXT):s])}【{_flat(text[s:e])}】"
              f"{_flat(text[e:e + CONTEXT])}")
    return len(art["quotes"]), dt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=sorted(SEEDS), required=True)
    ap.add_argument("--lang", choices=sorted(CORPORA), required=True)
    ap.add_argument("--n", type=int, default=15)
    ap.add_argument("--skip", type=int, default=0, help="skip the first SKIP sampled articles")
    ap.add_argument("--full", action="store_true", help="print the article text too")
    ap.add_argument("--ids", action="store_true", help="print only the sampled ids")
    args = ap.parse_args(argv)
    picked = sample(args.lang, args.split, args.skip + args.n)[args.skip:]
    if args.ids:
        print("\n".join(aid for aid, _ in picked))
        return 0
    total, secs = 0, 0.0
    for aid, rec in picked:
        n, dt = show(aid, rec, args.lang, args.full)
        total, secs = total + n, secs + dt
    ms = secs / max(1, len(picked)) * 1000
    print(f"\n# {len(picked)} articles, {total} quotes, enrich {ms:.1f} ms/article", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
