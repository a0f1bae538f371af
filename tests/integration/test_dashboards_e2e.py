"""Dashboards against real services: every panel's query returns data on the indexed samples, and
``khabar dashboards install`` sends a valid saved-objects import to a Kibana stand-in on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from khabar import dashboards, submit
from khabar.config import KhabarConfig
from khabar.connectors.elasticsearch import open_client
from khabar.connectors.kafka import send_records
from khabar.pipelines.ingest import run

pytestmark = pytest.mark.integration


def _index_samples(cfg: KhabarConfig, sample_paths: list[Path]) -> None:
    send_records(cfg.kafka, [submit.encode(m) for m, _ in submit.iter_messages([str(p) for p in sample_paths])])
    result = run(cfg, bounded=True)
    assert "DONE" in result.state and result.counters.get("enriched") == len(sample_paths), result.counters


def test_every_panel_returns_data_on_the_samples(isolated_config: KhabarConfig, sample_paths: list[Path]) -> None:
    cfg = isolated_config
    _index_samples(cfg, sample_paths)
    prefix = cfg.elasticsearch.index_prefix
    requests = dashboards.panel_requests(dashboards.load_objects(), prefix=prefix)
    assert len(requests) >= 30
    client = open_client(cfg.elasticsearch)
    empty, report = [], []
    try:
        client.indices.refresh(index=f"{prefix}-*")
        for req in requests:
            assert req.index.startswith(prefix + "-")
            response = client.search(index=req.index, **req.body).body
            table = dashboards.rows(req, response)
            hits = response["hits"]["total"]["value"]
            # Data means matching documents and at least one row with a non-empty bucket.
            counts = [v for row in table for k, v in row.items()
                      if any(m.label == k and m.operation == "count" for m in req.metrics)]
            ok = hits > 0 and bool(table) and (not counts or max(counts) > 0)
            report.append(f"{req.dashboard} / {req.title}: {hits} hits, {len(table)} rows")
            if not ok:
                empty.append(f"{req.dashboard} / {req.title} ({req.index}): {hits} hits, rows {table[:2]}")
    finally:
        client.close()
    print("\n" + "\n".join(report))
    assert not empty, "panels without data on the samples:\n" + "\n".join(empty)


# --- install against a Kibana stand-in ------------------------------------------------------------

class _Kibana:
    """What the stand-in saw and how it answers."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.answer: dict[str, Any] | None = None


def _check_import(method: str, path: str, headers: Any, body: bytes) -> tuple[list[str], list[dict[str, Any]]]:
    """Problems with a request as Kibana's import API sees it, and the objects it carried."""
    problems = []
    url = urlsplit(path)
    if method != "POST":
        problems.append(f"method {method}")
    if not url.path.endswith("/api/saved_objects/_import"):
        problems.append(f"path {url.path}")
    if headers.get("kbn-xsrf") is None:
        problems.append("no kbn-xsrf header")
    ctype = headers.get("Content-Type", "")
    if not ctype.startswith("multipart/form-data") or "boundary=" not in ctype:
        problems.append(f"content type {ctype}")
        return problems, []
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
    parts = list(message.iter_parts())
    files = [p for p in parts if p.get_param("name", header="content-disposition") == "file"]
    if len(files) != 1:
        return [*problems, f"{len(files)} 'file' parts"], []
    filename = files[0].get_filename() or ""
    if not filename.endswith(".ndjson"):
        problems.append(f"file name {filename}")
    objects = []
    for n, line in enumerate(files[0].get_payload(decode=True).decode("utf-8").splitlines(), 1):
        obj = json.loads(line)
        valid = isinstance(obj, dict) and obj.get("type") and obj.get("id")
        if not (valid and isinstance(obj.get("attributes"), dict)):
            problems.append(f"line {n} is not a saved object")
        objects.append(obj)
    present = {(o["type"], o["id"]) for o in objects}
    for obj in objects:
        for ref in obj.get("references") or []:
            if (ref["type"], ref["id"]) not in present:
                problems.append(f"{obj['id']}: unresolved reference {ref}")
    return problems, objects


@pytest.fixture
def kibana() -> Iterator[tuple[str, _Kibana]]:
    state = _Kibana()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            problems, objects = _check_import("POST", self.path, self.headers, body)
            headers = {k.lower(): v for k, v in self.headers.items()}
            state.requests.append({"path": self.path, "headers": headers, "problems": problems, "objects": objects})
            if problems:
                status, answer = 400, {"statusCode": 400, "error": "Bad Request", "message": "; ".join(problems)}
            else:
                status = state.status
                answer = state.answer or {"success": True, "successCount": len(objects), "successResults": [
                    {"type": o["type"], "id": o["id"]} for o in objects]}
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_install_posts_a_valid_import(kibana: tuple[str, _Kibana], monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    url, state = kibana
    monkeypatch.setenv("KHABAR_KIBANA_USERNAME", "analyst")
    monkeypatch.setenv("KHABAR_KIBANA_PASSWORD", "s3cret")
    monkeypatch.delenv("KHABAR_KIBANA_API_KEY", raising=False)
    assert dashboards.main(["install", "--kibana-url", url, "--space", "news", "--overwrite",
                            "--index-prefix", "khabar"]) == 0
    (seen,) = state.requests
    assert seen["problems"] == []
    split = urlsplit(seen["path"])
    assert split.path == "/s/news/api/saved_objects/_import"
    assert parse_qs(split.query) == {"overwrite": ["true"]}
    assert seen["headers"]["kbn-xsrf"] == "true"
    assert seen["headers"]["authorization"] == "Basic YW5hbHlzdDpzM2NyZXQ="
    shipped = dashboards.load_objects()
    assert [(o["type"], o["id"]) for o in seen["objects"]] == [(o["type"], o["id"]) for o in shipped]
    assert json.loads(capsys.readouterr().out)["successCount"] == len(shipped)


def test_install_without_overwrite_and_with_another_prefix(kibana: tuple[str, _Kibana],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    url, state = kibana
    monkeypatch.setenv("KHABAR_KIBANA_API_KEY", "a2V5")
    assert dashboards.main(["install", "--kibana-url", url, "--index-prefix", "news"]) == 0
    (seen,) = state.requests
    assert seen["problems"] == [] and urlsplit(seen["path"]).query == ""
    assert urlsplit(seen["path"]).path == "/api/saved_objects/_import"
    assert seen["headers"]["authorization"] == "ApiKey a2V5"
    titles = {o["attributes"]["title"] for o in seen["objects"] if o["type"] == "index-pattern"}
    assert titles == {"news-articles*", "news-entities*", "news-quotes*"}


def test_install_reports_kibana_failures(kibana: tuple[str, _Kibana], monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    url, state = kibana
    for name in ("KHABAR_KIBANA_API_KEY", "KHABAR_KIBANA_USERNAME", "KHABAR_KIBANA_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    state.answer = {"success": False, "successCount": 3, "errors": [
        {"type": "lens", "id": "khabar-quotes-stance", "error": {"type": "conflict"}}]}
    assert dashboards.main(["install", "--kibana-url", url, "--index-prefix", "khabar"]) == 1
    err = capsys.readouterr().err
    assert "khabar-quotes-stance" in err and "conflict" in err
    assert "authorization" not in state.requests[0]["headers"]

    state.answer, state.status = {"statusCode": 401, "message": "unauthorized"}, 401
    assert dashboards.main(["install", "--kibana-url", url, "--index-prefix", "khabar"]) == 1
    assert "HTTP 401" in capsys.readouterr().err

    assert dashboards.main(["install", "--kibana-url", "http://127.0.0.1:9", "--index-prefix", "khabar",
                            "--timeout", "5"]) == 1
    assert "cannot reach Kibana" in capsys.readouterr().err


def test_checker_rejects_a_bad_import() -> None:
    body, ctype = dashboards.multipart("x.ndjson", b'{"type":"lens","id":"a","attributes":{},'
                                       b'"references":[{"type":"index-pattern","id":"nope","name":"n"}]}\n')
    problems, _ = _check_import("POST", "/api/saved_objects/_import", {"Content-Type": ctype}, body)
    assert "no kbn-xsrf header" in problems and any("unresolved reference" in p for p in problems)
