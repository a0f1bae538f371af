"""Credentials never show up in `khabar config show`, in log lines, or in dead letters.

The secrets are given the ways a user gives them (environment variables, ``*_file`` keys, userinfo
in a URL) and every output is searched for them, raw and base64-encoded (as in a Basic auth header).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from khabar import cli
from khabar.config import load_config, masked, redact_url
from khabar.connectors.elasticsearch import IndexRequest, open_client, write_batch
from khabar.pipelines import documents, ingest

ES_PASSWORD = "es-Pa55-5ecret-4711"
API_KEY = "QVBJLWtleS1zZWNyZXQtMDgxNQ=="
SASL_PASSWORD = "sasl-Pa55-5ecret-2342"
URL_PASSWORD = "url-Pa55-5ecret-9999"
SECRETS = (ES_PASSWORD, API_KEY, SASL_PASSWORD, URL_PASSWORD)


def _forms(secret: str) -> list[str]:
    basic = base64.b64encode(f"elastic:{secret}".encode()).decode()
    return [secret, basic, base64.b64encode(secret.encode()).decode()]


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        for form in _forms(secret):
            assert form not in text, f"a secret ({secret[:6]}…) appears in {where}"


def test_config_show_masks_secrets_from_env_files_and_urls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    secret_file = tmp_path / "kafka-password"
    secret_file.write_text(SASL_PASSWORD + "\n")
    monkeypatch.chdir(tmp_path)  # no ./khabar.toml
    monkeypatch.setenv("KHABAR_ELASTICSEARCH_USERNAME", "elastic")
    monkeypatch.setenv("KHABAR_ELASTICSEARCH_PASSWORD", ES_PASSWORD)
    monkeypatch.setenv("KHABAR_ELASTICSEARCH_API_KEY", API_KEY)
    monkeypatch.setenv("KHABAR_KAFKA_SASL_PASSWORD_FILE", str(secret_file))
    monkeypatch.setenv("KHABAR_KAFKA_SASL_USERNAME", "khabar")
    assert cli.main(["config", "show", "--es-url", f"https://elastic:{URL_PASSWORD}@127.0.0.1:9200"]) == 0
    out = capsys.readouterr()
    shown = json.loads(out.out)
    assert shown["elasticsearch"]["password"] == "***" and shown["elasticsearch"]["api_key"] == "***"
    assert shown["kafka"]["sasl_password"] == "***"
    assert shown["elasticsearch"]["url"] == "https://***@127.0.0.1:9200"
    assert_no_secret(out.out + out.err, "khabar config show")
    # The configuration really holds them (the masking is not hiding an empty value).
    cfg = load_config(environ={"KHABAR_ELASTICSEARCH_PASSWORD": ES_PASSWORD,
                               "KHABAR_KAFKA_SASL_PASSWORD_FILE": str(secret_file)})
    assert cfg.elasticsearch.password == ES_PASSWORD and cfg.kafka.sasl_password == SASL_PASSWORD
    assert_no_secret(repr(cfg), "repr(config)")
    assert_no_secret(json.dumps(masked(cfg)), "masked(config)")


def test_redact_url() -> None:
    assert redact_url("http://127.0.0.1:9200") == "http://127.0.0.1:9200"
    assert redact_url(f"https://u:{URL_PASSWORD}@a:9200,https://u:{URL_PASSWORD}@b:9200") == \
        "https://***@a:9200,https://***@b:9200"
    assert URL_PASSWORD not in redact_url(f"http://u:{URL_PASSWORD}/x@y@host:1")


class _BulkRejects(BaseHTTPRequestHandler):
    """A stand-in Elasticsearch answering every bulk item with a mapping error."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8", "replace")
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        items = [{"index": {"_index": op["index"]["_index"], "_id": op["index"]["_id"], "status": 400,
                            "error": {"type": "document_parsing_exception", "reason": "failed to parse field"}}}
                 for op in lines[::2]]
        self._send({"took": 1, "errors": True, "items": items})

    do_PUT = do_POST  # the client sends bulk requests as PUT

    def do_GET(self) -> None:
        self._send({"version": {"number": "8.19.7"}, "tagline": "You Know, for Search"})

    def do_HEAD(self) -> None:
        self._send({})

    def _send(self, data: dict[str, Any]) -> None:
        payload = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BulkRejects)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _secret_config(url: str, **es: Any) -> Any:
    return load_config({"elasticsearch.url": url, "elasticsearch.username": "elastic",
                        "elasticsearch.password": ES_PASSWORD, "elasticsearch.retry_deadline": 1.0,
                        "elasticsearch.initial_backoff": 0.05, "elasticsearch.max_retries": 0,
                        "kafka.sasl_password": SASL_PASSWORD, "kafka.sasl_mechanism": "PLAIN",
                        "kafka.sasl_username": "khabar", **es}, environ={})


def test_dead_letters_and_debug_logs_of_rejected_writes_hold_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with _server() as url:
        cfg = _secret_config(f"http://elastic:{URL_PASSWORD}@{url.removeprefix('http://')}")
        client = open_client(cfg.elasticsearch)
        try:
            article = {"id": "a1", "text": "قال الرئيس", "body": "قال الرئيس", "entities": [], "quotes": []}
            requests = documents.article_to_requests(article, "khabar", origin={
                "topic": "t", "partition": 0, "offset": 1, "key": "a1", ingest.ORIGINAL_MESSAGE: article})
            dead = write_batch(client, cfg.elasticsearch, [IndexRequest(*r) for r in requests])
        finally:
            client.close()
    assert len(dead) == 1
    letters = [ingest._index_dead_letter(d) for d in dead]
    encoded = [documents.encode_dead_letter(le)[1].decode() for le in letters]
    assert "failed to parse field" in encoded[0]
    assert_no_secret("\n".join(encoded), "index dead letters")
    assert_no_secret("\n".join(r.getMessage() for r in caplog.records), "log lines")


def test_unreachable_elasticsearch_error_and_logs_hold_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = _secret_config(f"http://elastic:{URL_PASSWORD}@127.0.0.1:9", **{"elasticsearch.api_key": API_KEY})
    client = open_client(cfg.elasticsearch)
    try:
        with pytest.raises(Exception) as info:
            write_batch(client, cfg.elasticsearch, [IndexRequest("khabar-articles", "a1", {"id": "a1"})],
                        sleep=lambda s: None)
    finally:
        client.close()
    assert_no_secret(f"{info.value!r} {info.value}", "the connection error")
    assert_no_secret("\n".join(r.getMessage() for r in caplog.records), "log lines")


def test_parse_and_enrich_dead_letters_hold_no_secret() -> None:
    cfg = _secret_config("http://127.0.0.1:9")
    from khabar.connectors.kafka import KafkaRecord

    fn = ingest._ParseFn(cfg.pipeline)
    out = list(fn.process(KafkaRecord("t", 0, 1, b"k", b"{not json", 0)))
    letters = [o.value for o in out]
    assert letters and letters[0]["stage"] == "parse"
    assert_no_secret(json.dumps(letters), "parse dead letters")
    assert_no_secret(repr(cfg.elasticsearch) + repr(cfg.kafka), "config reprs")
