"""A small HTTP proxy in front of Elasticsearch that answers part of the bulk traffic with 429.

It stands for an overloaded cluster whose bulk queue is full: for a fraction of ``/_bulk``
requests it refuses the whole request (HTTP 429, ``es_rejected_execution_exception``, nothing
forwarded); for another fraction it forwards only some of the items and answers the others with
a per-item 429, as Elasticsearch does when its write thread pool rejects them. Everything else is
forwarded unchanged. Rejected items never reach Elasticsearch, so a client that gave up on them
would show up as missing documents.

Example::

    with ThrottlingProxy("http://127.0.0.1:9200", whole=0.2, items=0.3) as proxy:
        run_pipeline(es_url=proxy.url)
        print(proxy.stats)
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_REJECTED = {"type": "es_rejected_execution_exception",
             "reason": "rejected execution of coordinating operation (injected by the test proxy)"}
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class ThrottlingProxy:
    """Forwards to ``upstream``; injects 429 into a fraction of bulk requests (see module docstring).

    Args:
        upstream: Elasticsearch base URL.
        whole: Probability that a bulk request is refused as a whole.
        items: Probability that a bulk request has some of its items refused (about half of them).
        seed: Seed of the random choices, so a run is reproducible.
    """

    def __init__(self, upstream: str, *, whole: float = 0.2, items: float = 0.3, seed: int = 429) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream_host = parsed.hostname or "127.0.0.1"
        self.upstream_port = parsed.port or 9200
        self.whole = whole
        self.items = items
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.enabled = True
        self.stats = {"bulk_requests": 0, "whole_429": 0, "partial_429": 0, "items_429": 0, "items_forwarded": 0}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="es-429-proxy")

    @property
    def url(self) -> str:
        """The proxy's base URL."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ThrottlingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _choose(self) -> str:
        with self._lock:
            self.stats["bulk_requests"] += 1
            if not self.enabled:
                return "pass"
            r = self._rng.random()
            if r < self.whole:
                self.stats["whole_429"] += 1
                return "whole"
            if r < self.whole + self.items:
                self.stats["partial_429"] += 1
                return "items"
            return "pass"

    def _pick_rejected(self, n: int) -> set[int]:
        with self._lock:
            return {i for i in range(n) if self._rng.random() < 0.5}

    def _count(self, key: str, n: int) -> None:
        with self._lock:
            self.stats[key] += n

    def _forward(self, method: str, path: str, headers: Any, body: bytes | None) -> tuple[int, list[Any], bytes]:
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=120)
        try:
            fwd = {k: v for k, v in headers.items() if k.lower() not in _HOP_HEADERS}
            if body is not None:
                fwd["Content-Length"] = str(len(body))
            conn.request(method, path, body=body, headers=fwd)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _body(self) -> bytes | None:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else None

            def _reply(self, status: int, headers: list[Any], payload: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in _HOP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _json(self, status: int, data: Any) -> None:
                self._reply(status, [("Content-Type", "application/json"), ("X-Elastic-Product", "Elasticsearch")],
                            json.dumps(data).encode())

            def _any(self) -> None:
                body = self._body()
                path = urllib.parse.urlsplit(self.path).path
                if path.endswith("/_bulk") and body:
                    self._bulk(body)
                    return
                self._reply(*proxy._forward(self.command, self.path, self.headers, body))

            def _bulk(self, body: bytes) -> None:
                mode = proxy._choose()
                if mode == "whole":
                    self._json(429, {"error": {"root_cause": [_REJECTED], **_REJECTED}, "status": 429})
                    return
                lines = [line for line in body.split(b"\n") if line.strip()]
                # khabar sends only index ops: an action line followed by its source line.
                pairs = [(lines[i], lines[i + 1]) for i in range(0, len(lines) - 1, 2)]
                rejected = proxy._pick_rejected(len(pairs)) if mode == "items" else set()
                if len(rejected) == len(pairs):
                    rejected.discard(0)
                kept = [p for i, p in enumerate(pairs) if i not in rejected]
                status, headers, payload = proxy._forward(
                    self.command, self.path, self.headers, b"\n".join(a + b"\n" + s for a, s in kept) + b"\n")
                if not rejected or status != 200:
                    proxy._count("items_forwarded", len(kept) if status == 200 else 0)
                    self._reply(status, headers, payload)
                    return
                answer = json.loads(payload)
                upstream_items = iter(answer.get("items") or [])
                items = []
                for i, (action, _source) in enumerate(pairs):
                    if i in rejected:
                        op, meta = next(iter(json.loads(action).items()))
                        items.append({op: {"_index": meta.get("_index"), "_id": meta.get("_id"), "status": 429,
                                           "error": _REJECTED}})
                    else:
                        items.append(next(upstream_items))
                proxy._count("items_429", len(rejected))
                proxy._count("items_forwarded", len(kept))
                self._json(200, {"took": answer.get("took", 0), "errors": True, "items": items})

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _any

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
