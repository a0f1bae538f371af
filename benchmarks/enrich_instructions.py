"""Instructions per enriched document, counted by valgrind: a speed figure that a busy machine cannot blur.

CPU-time figures (``enrich_speed.py``) move by 20-30 % between runs on a shared machine, more than most
changes gain. Instruction counts under valgrind's cachegrind (address randomisation off, fixed hash
seed, one BLAS thread) repeat to within about 1-3 % (the baseline's, a small difference of two large
counts, less well), so two checkouts can be compared in one session. They do not see cache misses,
so they complement the CPU-time benchmark and do not replace it.

Per corpus, each figure is the difference of two runs: ``--warm`` documents, then the same plus
``--docs`` more (unseen ones, as in a stream); their difference divided by ``--docs`` is the cost
of one warm document. The baseline, measured the same way in the same run, is decoding the JSON
line and normalising the text.

Usage::

    python benchmarks/enrich_instructions.py                   # 100 docs after 300 warm-up, 3 corpora
    python benchmarks/enrich_instructions.py --corpus saudinewsnet --docs 200 --warm 1000

Needs ``valgrind`` (Debian package ``valgrind``). The corpora are read in place from
``../shared/data/news`` (research-only; never copied here). Runs take about a minute per corpus and
figure on this machine (valgrind runs Python ~50x slower).
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NEWS = ROOT.parent / "shared" / "data" / "news"
CORPORA = ("iranian_news", "persian_news", "saudinewsnet")
_IR_RE = re.compile(r"I\s+refs:\s+([\d,]+)")


def _child(path: str, mode: str, warm: int, docs: int) -> None:
    """Runs inside valgrind: warm up, then process ``docs`` further documents."""
    import khabar.enrich as enrich_mod
    from khabar.boilerplate import FurnitureLearner
    from khabar.normalize import normalize

    with gzip.open(path, "rt", encoding="utf-8") as fh:
        lines = list(itertools.islice(fh, warm + docs))
    enrich_mod.tune_gc()
    enrich_mod.preload()
    learner = FurnitureLearner()
    if mode == "enrich":
        for line in lines:
            enrich_mod.enrich(json.loads(line), learner=learner)
    else:
        for line in lines[warm:]:
            normalize(enrich_mod.message_text(json.loads(line)))


def _instructions(path: Path, mode: str, warm: int, docs: int) -> int:
    # One BLAS thread: idle BLAS threads spin, and their instructions would differ from run to run.
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1"}
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
           sys.executable, __file__, "--child", str(path), mode, str(warm), str(docs)]
    if shutil.which("setarch"):
        cmd = ["setarch", "-R", *cmd]  # the same addresses every run: dict and set orders repeat
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    m = _IR_RE.search(out.stderr)
    if out.returncode != 0 or m is None:
        raise RuntimeError(f"valgrind run failed ({mode}, {path.name}):\n{out.stderr[-3000:]}")
    return int(m.group(1).replace(",", ""))


def measure(path: Path, warm: int, docs: int) -> dict:
    """Instructions per document for enrichment and for the baseline (json + normalize)."""
    runs = [("enrich", warm, 0), ("enrich", warm, docs), ("baseline", warm, 0), ("baseline", warm, docs)]
    with ThreadPoolExecutor(max_workers=2) as pool:  # two valgrind processes, one per core
        ir = list(pool.map(lambda r: _instructions(path, *r), runs))
    enrich = (ir[1] - ir[0]) / docs
    baseline = (ir[3] - ir[2]) / docs
    return {"corpus": path.name.removesuffix(".jsonl.gz"), "warm": warm, "docs": docs,
            "enrich_instructions_per_doc": round(enrich), "baseline_instructions_per_doc": round(baseline),
            "ratio": round(enrich / baseline, 2)}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(NEWS))
    ap.add_argument("--corpus", action="append", choices=CORPORA, help="default: all three")
    ap.add_argument("--docs", type=int, default=100, help="counted documents per corpus")
    ap.add_argument("--warm", type=int, default=300, help="documents enriched first (caches warm up)")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    results = []
    for name in args.corpus or CORPORA:
        r = measure(Path(args.data) / f"{name}.jsonl.gz", args.warm, args.docs)
        results.append(r)
        enrich = r["enrich_instructions_per_doc"] / 1e6
        print(f"{r['corpus']:<14} warm={r['warm']} docs={r['docs']}  enrich={enrich:.2f}M instructions/doc"
              f"  baseline (json + normalize)={r['baseline_instructions_per_doc'] / 1e6:.2f}M  "
              f"ratio={r['ratio']:.2f}", flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"corpora": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
