"""Throughput of the text stage (normalise, language, structure, dates) on real news, per core.

Also reports language-id agreement with each corpus's declared language, and, with ``--full``,
the throughput of the whole ``enrich`` (entities, quotes, claims included).

Usage::

    .venv/bin/python benchmarks/text_throughput.py [--limit 2000] [--full] [--data /work/shared/data/news]

The corpora are read in place (research-only data; never copied into the repository). A corpus's
declared language is the message's ``language`` field when present, else the one given below.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from khabar.boilerplate import FurnitureLearner, analyse
from khabar.dates import extract_dates
from khabar.enrich import enrich, message_text
from khabar.language import detect_language
from khabar.normalize import normalize

DECLARED = {"iranian_news": "fa", "persian_news": "fa", "saudinewsnet": "ar"}


def _messages(path: Path, limit: int | None) -> Iterator[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if limit is not None and i >= limit:
                return
            yield json.loads(line)


def text_stage(msg: dict, learner: FurnitureLearner) -> tuple[str, float]:
    """The text stage alone; returns the detected language."""
    text = message_text(msg)
    norm = normalize(text)
    lang, conf = detect_language(norm.display)
    title = msg.get("title") if isinstance(msg.get("title"), str) else None
    analyse(text, source=msg.get("source"), title=title, learner=learner, norm=norm)
    extract_dates(text, language=lang, norm=norm)
    return lang, conf


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "news"))
    ap.add_argument("--limit", type=int, default=2000, help="documents per corpus (0 = all)")
    ap.add_argument("--full", action="store_true", help="also time the full enrich()")
    args = ap.parse_args()
    limit = args.limit or None
    for path in sorted(Path(args.data).glob("*.jsonl.gz")):
        name = path.name.removesuffix(".jsonl.gz")
        msgs = list(_messages(path, limit))
        chars = sum(len(message_text(m)) for m in msgs)
        learner = FurnitureLearner()
        agree, langs, nonempty = 0, Counter(), 0
        t0 = time.process_time()
        for m in msgs:
            lang, _ = text_stage(m, learner)
            langs[lang] += 1
            declared = m.get("language") or DECLARED.get(name)
            if any(ch.isalpha() for ch in message_text(m)[:2000]):  # a body of "." has no language
                nonempty += 1
                agree += lang == declared
        dt = time.process_time() - t0
        line = (f"{name:<14} docs={len(msgs):>6} avg_chars={chars / max(len(msgs), 1):>6.0f} "
                f"text_stage={len(msgs) / dt:>7.1f} docs/s/core  "
                f"lang_agreement={agree / max(nonempty, 1):.4f} ({dict(langs)})")
        if args.full:
            learner = FurnitureLearner()
            t0 = time.process_time()
            for m in msgs:
                enrich(m, learner=learner)
            line += f"  full_enrich={len(msgs) / (time.process_time() - t0):.1f} docs/s/core"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
