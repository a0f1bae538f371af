"""Re-score khabar quotes against the hand judgments in quotes_judged.json.

Re-runs :func:`khabar.enrich.enrich` on every judged article (read in place from
/work/shared/data/news; the article's sha1 is checked) and matches each reported quote to a judged
quote or a missed statement by overlapping spans. Prints, per language: precision (judged real /
judged matched), speaker accuracy (speaker right among real ones), span accuracy (where checked),
recall in the recall-checked articles (real statements found / real statements a reader sees), and
how many reported quotes match no judgment (new output a later change made: judge them before
trusting the precision).

Usage::

    .venv/bin/python benchmarks/quality/quotes_score.py [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quotes_sample import load, message, text_of

JUDGED = Path(__file__).resolve().parent / "quotes_judged.json"


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


def _best(span: tuple[int, int], items: list[dict]) -> dict | None:
    best, key = None, (0, 0)
    for it in items:
        o = _overlap(span, (it["start"], it["end"]))
        k = (o, -abs(span[0] - it["start"]) - abs(span[1] - it["end"]))  # ties: the closest span
        if o > 0 and (best is None or k > key):
            best, key = it, k
    return best


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 3) if b else None


def score(judged: dict) -> dict:
    from khabar.enrich import enrich

    stats: dict[str, dict[str, int]] = {}
    for art in judged["articles"]:
        st = stats.setdefault(art["lang"], dict.fromkeys(
            ["reported", "matched", "real", "speaker_ok", "span_checked", "span_ok", "unjudged",
             "recall_found", "recall_total"], 0))
        rec = load(art["id"])
        text = text_of(rec)
        if hashlib.sha1(text.encode()).hexdigest() != art["text_sha1"]:
            raise SystemExit(f"{art['id']}: corpus text changed")
        quotes = enrich(message(art["id"], rec, art["lang"]))["quotes"]
        real_items = [q for q in art["quotes"] if q["real"]] + art["missed"]
        hit: set[int] = set()
        for q in quotes:
            st["reported"] += 1
            span = (q["start"], q["end"])
            j = _best(span, art["quotes"])
            if j is not None:
                st["matched"] += 1
                st["real"] += bool(j["real"])
                st["speaker_ok"] += bool(j["real"] and j["speaker_ok"])
                if j["real"] and j["span_ok"] is not None:
                    st["span_checked"] += 1
                    st["span_ok"] += bool(j["span_ok"])
            elif _best(span, art["missed"]) is not None:
                # A statement the judged run missed is found now; its speaker is not judged.
                st["matched"] += 1
                st["real"] += 1
                st["speaker_ok"] += 1
            else:
                st["unjudged"] += 1
            r = _best(span, real_items)
            if r is not None:
                hit.add(id(r))
        if art["recall_checked"]:
            st["recall_total"] += len(real_items)
            st["recall_found"] += len(hit)
    out = {}
    for lang, st in stats.items():
        out[lang] = {**st,
                     "precision": _ratio(st["real"], st["matched"]),
                     "speaker_accuracy": _ratio(st["speaker_ok"], st["real"]),
                     "span_accuracy": _ratio(st["span_ok"], st["span_checked"]),
                     "recall": _ratio(st["recall_found"], st["recall_total"])}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result = score(json.loads(JUDGED.read_text(encoding="utf-8")))
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    for lang, r in sorted(result.items()):
        print(f"{lang}: precision {r['precision']} ({r['real']}/{r['matched']}), "
              f"speaker {r['speaker_accuracy']} ({r['speaker_ok']}/{r['real']}), "
              f"span {r['span_accuracy']} ({r['span_ok']}/{r['span_checked']}), "
              f"recall {r['recall']} ({r['recall_found']}/{r['recall_total']}), unjudged {r['unjudged']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
