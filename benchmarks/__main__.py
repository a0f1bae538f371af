"""Run every benchmark in one go: ``python -m benchmarks`` (or ``make bench``).

Needs Kafka and Elasticsearch running (``khabar services up``) for the end-to-end part and
``../shared/data/news`` beside the repository. Each harness prints its figures and writes its JSON
under ``benchmarks/results/``; the soak is separate (``python benchmarks/soak.py``: ten minutes).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

STEPS = [
    ("enrichment per core, warm, per stage, against the 300/s target",
     [str(HERE / "enrich_speed.py"), "--docs", "1000", "--warm", "3000", "--out", str(RESULTS / "enrich_speed.json")]),
    ("text stage per core, language agreement", [str(HERE / "text_throughput.py"), "--limit", "1000"]),
    ("story linking cost", [str(HERE / "stories_speed.py"), "--limit", "300"]),
    ("end to end: limits, peer, pipeline, latency",
     [str(HERE / "e2e.py"), "--docs", "1000", "--rates", "50", "--latency-seconds", "60",
      "--out", str(RESULTS / "e2e.json")]),
]


def main() -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    failed = 0
    for title, cmd in STEPS:
        print(f"\n=== {title}\n$ python {' '.join(Path(c).name if c.endswith('.py') else c for c in cmd)}", flush=True)
        failed += subprocess.call([sys.executable, *cmd]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
