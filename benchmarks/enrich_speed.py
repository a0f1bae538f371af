"""Enrichment speed per core on real news, warm, with the time of every stage.

The pipeline is a long-running stream, so the NER and linking caches are warm: each corpus is first
enriched for ``--warm`` documents, then ``--docs`` further documents are timed (CPU time of this
process, so "per core"), alternating with as many documents enriched with a timer around every stage
of :func:`khabar.enrich.enrich` (timers cost a little themselves). The
result is set against the issue's target (300 docs/s per core) and against a baseline measured in
the same run: decoding the same JSON lines and normalising the text (the least any enrichment does).
The garbage collector is tuned as in the pipeline's worker (:func:`khabar.enrich.tune_gc`).

Usage::

    python benchmarks/enrich_speed.py                      # 1000 docs per corpus after 3000 warm-up
    python benchmarks/enrich_speed.py --docs 3000 --warm 5000 --out benchmarks/results/enrich_speed.json

The corpora are read in place from ``../shared/data/news`` (research-only; never copied here).
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import resource
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import khabar.enrich as enrich_mod
from khabar.boilerplate import FurnitureLearner
from khabar.normalize import normalize

NEWS = Path(__file__).resolve().parents[2] / "shared" / "data" / "news"
TARGET = 300.0
STAGES = ("normalize", "detect_language", "analyse", "extract_dates", "extract_entities", "extract_quotes",
          "extract_claims", "_mixed_paragraphs")


def _lines(path: Path, start: int, count: int) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return list(itertools.islice(fh, start, start + count))


def _timed(totals: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        t = time.process_time()
        out = fn(*args, **kwargs)
        totals[name] += time.process_time() - t
        return out
    return run


def measure(path: Path, docs: int, warm: int) -> dict[str, Any]:
    """Warm up on ``warm`` documents after the timed ones, then time ``2 * docs`` documents of a corpus.

    Documents alternate between an untimed-stage pass (the figure that counts) and a pass with a
    timer around every stage, so both see unseen documents from the same part of the corpus with
    the same history. Re-reading documents would find every token form and name already cached,
    which a stream does not.
    """
    lines = _lines(path, 0, 2 * docs)
    timed_lines, stage_lines = lines[0::2], lines[1::2]
    learner = FurnitureLearner()
    for line in _lines(path, 2 * docs, warm):
        enrich_mod.enrich(json.loads(line), learner=learner)

    t0 = time.process_time()
    for line in timed_lines:
        normalize(enrich_mod.message_text(json.loads(line)))
    baseline = time.process_time() - t0

    totals: dict[str, float] = defaultdict(float)
    originals = {name: getattr(enrich_mod, name) for name in STAGES}
    timed = {name: _timed(totals, name, fn) for name, fn in originals.items()}
    clean = total = 0.0
    try:
        for plain, staged in zip(timed_lines, stage_lines, strict=False):
            t0 = time.process_time()
            enrich_mod.enrich(json.loads(plain), learner=learner)
            clean += time.process_time() - t0
            for name, fn in timed.items():
                setattr(enrich_mod, name, fn)
            t0 = time.process_time()
            enrich_mod.enrich(json.loads(staged), learner=learner)
            total += time.process_time() - t0
            for name, fn in originals.items():
                setattr(enrich_mod, name, fn)
    finally:
        for name, fn in originals.items():
            setattr(enrich_mod, name, fn)
    n, n_staged = len(timed_lines), max(len(stage_lines), 1)
    return {
        "corpus": path.name.removesuffix(".jsonl.gz"), "docs": n, "warm": warm,
        "avg_chars": round(sum(len(enrich_mod.message_text(json.loads(x))) for x in timed_lines) / max(n, 1)),
        "docs_per_s_per_core": round(n / clean, 1),
        "ms_per_doc": round(1000 * clean / n, 3),
        "baseline_docs_per_s": round(n / baseline, 1),
        "stages_ms_per_doc": {k: round(1000 * v / n_staged, 3)
                              for k, v in sorted(totals.items(), key=lambda kv: -kv[1])},
        "other_ms_per_doc": round(1000 * (total - sum(totals.values())) / n_staged, 3),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(NEWS))
    ap.add_argument("--docs", type=int, default=1000, help="timed documents per corpus (and as many stage-timed)")
    ap.add_argument("--warm", type=int, default=3000, help="documents enriched first (caches warm up)")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args()
    enrich_mod.tune_gc()  # as the pipeline's enrichment worker and `khabar enrich` do
    results = []
    for path in sorted(Path(args.data).glob("*.jsonl.gz")):
        r = measure(path, args.docs, args.warm)
        results.append(r)
        stages = "  ".join(f"{k}={v:.2f}" for k, v in r["stages_ms_per_doc"].items())
        print(f"{r['corpus']:<14} docs={r['docs']} avg_chars={r['avg_chars']}  "
              f"enrich={r['docs_per_s_per_core']:.1f} docs/s/core ({r['ms_per_doc']:.2f} ms/doc)  "
              f"x{r['docs_per_s_per_core'] / TARGET:.2f} of the {TARGET:.0f} target  "
              f"baseline (json + normalize)={r['baseline_docs_per_s']:.0f} docs/s  "
              f"ratio={r['docs_per_s_per_core'] / r['baseline_docs_per_s']:.2f}\n    ms/doc: {stages}  "
              f"other={r['other_ms_per_doc']:.2f}", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {rss:.0f} MiB")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"target": TARGET, "peak_rss_mb": round(rss), "corpora": results},
                                             indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
