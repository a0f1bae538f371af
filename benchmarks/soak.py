"""Soak: real news at a fixed rate through the streaming pipeline, memory sampled, nothing lost.

Produces real articles from ``../shared/data/news`` at ``--rate`` documents/s for ``--minutes``
while ``khabar run`` (streaming, its own process) ingests them; samples the pipeline's RSS every
few seconds; then waits until the consumer lag is zero and every produced id is in Elasticsearch.
Prints and writes (JSON) the figures: produced / indexed / dead-lettered / duplicated, lag at the
end, catch-up time, RSS first/max/last and the slope of RSS over the second half of the run.

Usage::

    python benchmarks/soak.py --minutes 10 --rate 100 --catch-up-minutes 30   # the issue's soak (not CI)
    python benchmarks/soak.py --minutes 1 --rate 100           # what CI runs (tests/integration/test_soak.py)
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from khabar.cli import run_command

ROOT = Path(__file__).resolve().parents[1]
NEWS = ROOT.parent / "shared" / "data" / "news"


def real_news(limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` real Arabic and Persian articles, interleaved."""
    per: list[list[dict[str, Any]]] = []
    for name in ("saudinewsnet.jsonl.gz", "persian_news.jsonl.gz", "iranian_news.jsonl.gz"):
        rows = []
        with gzip.open(NEWS / name, "rt", encoding="utf-8") as handle:
            for line in itertools.islice(handle, limit):
                rec = json.loads(line)
                text = rec.get("content") or rec.get("text") or ""
                if len(text.strip()) > 200:
                    rows.append({"text": text, "title": rec.get("title"), "source": rec.get("source") or name})
        per.append(rows)
    return [r for group in itertools.zip_longest(*per) for r in group if r][:limit]


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process in MiB (Linux /proc), or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def slope_mb_per_min(samples: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of RSS over time, in MiB per minute."""
    if len(samples) < 3:
        return 0.0
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_m = sum(m for _, m in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    return 60 * sum((t - mean_t) * (m - mean_m) for t, m in samples) / var


def indexed_ids(client: Any, index: str, page: int = 10_000) -> set[str]:
    """Every document id in an index, exactly (search_after pages sorted by id)."""
    ids: set[str] = set()
    after: list[Any] | None = None
    while True:
        extra = {"search_after": after} if after else {}
        res = client.search(index=index, size=page, source=False, sort=[{"id": "asc"}], **extra)
        hits = res["hits"]["hits"]
        ids.update(hit["_id"] for hit in hits)
        if len(hits) < page:
            return ids
        after = hits[-1]["sort"]


def run_soak(cfg: Any, *, rate: float, seconds: float, catch_up_timeout: float = 900.0,
             sample_every: float = 5.0, log: Any = print) -> dict[str, Any]:
    """Run the soak against the services in ``cfg``; return the figures."""
    from khabar import ops, submit
    from khabar.connectors.elasticsearch import open_client
    from khabar.connectors.kafka import ensure_topics, producer

    total = int(rate * seconds)
    pool = real_news(min(total, 5000))
    ensure_topics(cfg.kafka)
    cmd = run_command(cfg)
    # A file, not a pipe: a pipe nobody reads would block the pipeline once it fills.
    err_log = tempfile.NamedTemporaryFile("w+", prefix="khabar-soak-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err_log, text=True)

    def tail() -> str:
        return Path(err_log.name).read_text(errors="replace")[-2000:]

    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    started = time.monotonic()

    def sample() -> None:
        while not stop.is_set():
            value = rss_mb(proc.pid)
            if value is not None:
                samples.append((time.monotonic() - started, value))
            stop.wait(sample_every)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    prod = producer(cfg.kafka)
    ids = []
    try:
        for i in range(total):
            target = started + i / rate
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            msg = {**pool[i % len(pool)], "id": f"soak-{i:07d}"}
            key, value = submit.encode(msg)
            prod.send(cfg.kafka.topic, key=key, value=value)
            ids.append(msg["id"])
            if proc.poll() is not None:
                raise RuntimeError(f"khabar run exited with {proc.returncode}: {tail()}")
        prod.flush()
        produced_at = time.monotonic()
        log(f"produced {total} documents in {produced_at - started:.0f}s")
        client = open_client(cfg.elasticsearch)
        index = cfg.elasticsearch.index("articles")
        indexed = 0
        lag_total = None
        deadline = produced_at + catch_up_timeout
        while time.monotonic() < deadline:
            lag_total = sum(row["lag"] for row in ops.consumer_lag(cfg))
            if client.indices.exists(index=index):
                client.indices.refresh(index=index)
                indexed = int(client.count(index=index)["count"])
            if lag_total == 0 and indexed >= total:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"khabar run exited with {proc.returncode}: {tail()}")
            time.sleep(2)
        caught_up = time.monotonic() - produced_at
        letters = ops.read_dead_letters(cfg)
        found = indexed_ids(client, index)
        client.close()
    finally:
        stop.set()
        sampler.join()
        prod.close()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        err_log.close()
        Path(err_log.name).unlink(missing_ok=True)
    half = [s for s in samples if s[0] >= samples[-1][0] / 2] if samples else []
    result = {
        "rate": rate, "seconds": seconds, "produced": total, "indexed": indexed,
        "distinct_ids_indexed": len(found),
        "missing": len(set(ids) - found - {letter.get("document_id") for letter in letters}),
        "unexpected": len(found - set(ids)),
        "dead_lettered": len(letters), "duplicated": max(0, indexed - len(found)),
        "lag_at_end": lag_total, "catch_up_s": caught_up,
        "rss_mb": {"first": samples[0][1] if samples else None, "max": max(m for _, m in samples) if samples else None,
                   "last": samples[-1][1] if samples else None,
                   "slope_second_half_mb_per_min": slope_mb_per_min(half), "samples": len(samples)},
    }
    log(json.dumps(result, indent=2))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--catch-up-minutes", type=float, default=15,
                        help="how long to wait after producing for lag 0 and every document indexed")
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--es-url", default="http://127.0.0.1:9200")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "soak.json"))
    args = parser.parse_args(argv)
    from khabar.config import load_config

    tag = uuid.uuid4().hex[:8]
    cfg = load_config({"kafka.bootstrap_servers": args.bootstrap_servers, "kafka.topic": f"soak-{tag}",
                       "kafka.dlq_topic": f"soak-{tag}.dlq", "kafka.group_id": f"soak-{tag}",
                       "elasticsearch.url": args.es_url, "elasticsearch.index_prefix": f"soak-{tag}"}, environ={})
    result = run_soak(cfg, rate=args.rate, seconds=args.minutes * 60, catch_up_timeout=args.catch_up_minutes * 60)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2), encoding="utf-8")
    ok = result["indexed"] + result["dead_lettered"] >= result["produced"] and result["lag_at_end"] == 0
    print("soak", "OK" if ok else "FAILED", f"-> {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
