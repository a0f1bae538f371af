"""CPU cost of story linking (signature + link) on real news, and Elasticsearch round trips per article.

Enriches N real articles (not timed; cached under /tmp, never in the repository), then times
:func:`khabar.stories.signature` and :func:`khabar.stories.link` per article in process CPU time,
linking each article in arrival order against the candidates the pipeline would give it (the
earlier articles sharing a claim id, an LSH band or a main entity, best first, at most
``max_candidates``). Then runs the linking DoFn of :mod:`khabar.pipelines.stories` over the same
articles with a counting stand-in for the Elasticsearch client, to count ``search`` and ``msearch``
calls, and checks that the DoFn gives the same results as the plain loop.

Usage::

    .venv/bin/python benchmarks/stories_speed.py [--limit 300] [--data /work/shared/data/news]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import pickle
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from khabar import stories
from khabar.enrich import enrich


def _messages(data: Path, limit: int) -> Iterator[dict[str, Any]]:
    paths = sorted(data.glob("*.jsonl.gz"))
    per = -(-limit // len(paths))
    for path in paths:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                if i >= per:
                    break
                m = json.loads(line)
                m.setdefault("id", f"{path.name.split('.')[0]}-{i}")
                text = m.get("body") or ""
                if isinstance(m.get("title"), str):
                    text = m["title"] + "\n\n" + text
                yield {"id": str(m["id"]), "text": text, "source": m.get("source"),
                       "published_at": (m.get("published") or m.get("date") or None)}


def _enriched(data: Path, limit: int) -> list[dict[str, Any]]:
    cache = Path(f"/tmp/khabar-stories-speed-{limit}.pkl")
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    recs = []
    for m in _messages(data, limit):
        try:
            recs.append(enrich(m))
        except Exception:  # a record the enricher rejects is not what this benchmark measures
            continue
    cache.write_bytes(pickle.dumps(recs))
    return recs


def _candidates(sig: Mapping[str, Any], seen: list[dict[str, Any]], params: stories.Params) -> list[dict]:
    wanted = {(f, v) for f, vs in stories.lookup_keys(sig).items() for v in vs}
    scored = []
    for k, c in enumerate(seen):
        n = sum(1 for f, vs in stories.lookup_keys(c).items() for v in vs if (f, v) in wanted)
        if n:
            scored.append((-n, k, c))
    scored.sort(key=lambda t: t[:2])
    return [c for *_, c in scored[: params.max_candidates]]


class _CountingClient:
    """Stands in for the Elasticsearch client: answers from the linked signatures, counts calls."""

    def __init__(self, docs: list[dict[str, Any]], params: stories.Params) -> None:
        self.docs = docs
        self.params = params
        self.calls = {"search": 0, "msearch": 0}

    def _answer(self, sig: Mapping[str, Any]) -> dict[str, Any]:
        hits = [{"_source": {"id": c["id"], "story_id": c["story_id"], "duplicate_of": c["duplicate_of"],
                             "story_signature": c}} for c in _candidates(sig, self.docs, self.params)]
        return {"hits": {"hits": hits}}

    def search(self, *, query: Any, **_: Any) -> dict[str, Any]:
        self.calls["search"] += 1
        return self._answer(query["_sig"])

    def msearch(self, *, searches: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
        self.calls["msearch"] += 1
        bodies = searches[1::2]
        return {"responses": [self._answer(b["query"]["_sig"]) for b in bodies]}

    def close(self) -> None:
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "news"))
    ap.add_argument("--limit", type=int, default=300, help="articles (spread over the corpora)")
    args = ap.parse_args()
    params = stories.DEFAULT
    recs = _enriched(Path(args.data), args.limit)
    n = len(recs)

    t0 = time.process_time()
    sigs = [stories.signature(r) for r in recs]
    t_sig = time.process_time() - t0

    seen: list[dict[str, Any]] = []
    cand_lists = []
    results = []
    t_link = 0.0
    ncand = 0
    for sig in sigs:
        cands = _candidates(sig, seen, params)
        cand_lists.append(cands)
        ncand += len(cands)
        t0 = time.process_time()
        res = stories.link(sig, cands, params)
        t_link += time.process_time() - t0
        results.append(res)
        seen.append({**sig, **res})
    print(f"articles={n} candidates/article={ncand / n:.1f}")
    print(f"signature: {1000 * t_sig / n:.2f} ms/article  link: {1000 * t_link / n:.2f} ms/article  "
          f"total: {1000 * (t_sig + t_link) / n:.2f} ms/article (CPU)")
    digest = json.dumps([[r["story_id"], r["duplicate_of"], r["reuses"]] for r in results], sort_keys=True)
    print(f"results digest: {hashlib.sha1(digest.encode()).hexdigest()[:16]}  "
          f"stories={len({r['story_id'] for r in results})} "
          f"duplicates={sum(1 for r in results if r['duplicate_of'])} "
          f"reuses={sum(1 for r in results if r['reuses'])}")
    sig_digest = hashlib.sha1(json.dumps(sigs, sort_keys=True).encode()).hexdigest()[:16]
    print(f"signatures digest: {sig_digest}")

    # Round trips of the pipeline step, through the real EsCandidateLookup with a counting client.
    from khabar.config import load_config
    from khabar.pipelines import stories as step

    orig_query = step.candidate_query
    step.candidate_query = lambda sig, window_days=365: {**orig_query(sig, window_days), "_sig": sig}
    try:
        cfg = load_config(environ={})
        lookup = step.EsCandidateLookup(cfg.elasticsearch, window_days=params.window_days,
                                        size=params.max_candidates)
        lookup.open = lambda: setattr(lookup, "_client", client)  # type: ignore[method-assign]
        # An empty index: candidates come from the step's cache of the articles it linked before.
        client = _CountingClient([], params)
        fn = step._LinkStoriesFn(lookup, params, cache_size=2000)
        fn.setup()
        if hasattr(fn, "start_bundle"):
            fn.start_bundle()
        t0 = time.process_time()
        out = []
        for r in recs:
            out.extend(fn.process(r) or [])
        if hasattr(fn, "finish_bundle"):
            out.extend(wv.value for wv in (fn.finish_bundle() or []))
        t_step = time.process_time() - t0
        step_digest = hashlib.sha1(json.dumps(sorted(
            [a["id"], a["story_id"], a["duplicate_of"], a["reuses"]] for a in out)).encode()).hexdigest()[:16]
        print(f"pipeline step over {len(out)} articles: search calls={client.calls['search']} "
              f"msearch calls={client.calls['msearch']}  {1000 * t_step / n:.2f} ms/article (CPU, "
              f"signature + cache + link)  results digest: {step_digest}")
    finally:
        step.candidate_query = orig_query
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
