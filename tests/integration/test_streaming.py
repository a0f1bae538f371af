"""The unbounded pipeline as a user runs it (`khabar run`), killed with SIGKILL mid-stream and restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from khabar import ops, submit
from khabar.cli import run_command
from khabar.config import KhabarConfig
from khabar.connectors.elasticsearch import open_client
from khabar.connectors.kafka import ensure_topics, producer

pytestmark = pytest.mark.integration


def _run_cmd(cfg: KhabarConfig) -> list[str]:
    return run_command(replace(cfg, elasticsearch=replace(cfg.elasticsearch, chunk_size=50)))


def _count(cfg: KhabarConfig) -> int:
    client = open_client(cfg.elasticsearch)
    try:
        index = cfg.elasticsearch.index("articles")
        if not client.indices.exists(index=index):
            return 0
        client.indices.refresh(index=index)
        return int(client.count(index=index)["count"])
    finally:
        client.close()


def _wait_for(cfg: KhabarConfig, at_least: int, proc: subprocess.Popen, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        count = _count(cfg)
        if count >= at_least:
            return count
        if proc.poll() is not None:
            raise AssertionError(f"khabar run exited early with {proc.returncode}")
        time.sleep(0.5)
    return count


def _stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.stdout.read() if proc.stdout else ""


def test_sigkill_mid_stream_then_restart_loses_and_doubles_nothing(isolated_config: KhabarConfig,
                                                                  sample_paths: list[Path],
                                                                  tmp_path: Path) -> None:
    cfg = isolated_config
    ensure_topics(cfg.kafka)
    paragraphs = [p for path in sample_paths for p in path.read_text("utf-8").split("\n") if len(p) > 40]
    messages = [{"id": f"s-{i:04d}", "text": "\n\n".join(paragraphs[i % len(paragraphs):][:3] or paragraphs[:3])}
                for i in range(600)]
    prod = producer(cfg.kafka)
    for m in messages[:300]:
        prod.send(cfg.kafka.topic, *reversed(submit.encode(m)))
    prod.flush()

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log1 = (tmp_path / "run1.log").open("w")
    first = subprocess.Popen(_run_cmd(cfg), stdout=log1, stderr=subprocess.STDOUT, env=env, text=True)
    try:
        seen = _wait_for(cfg, 50, first, timeout=180)
        assert seen >= 50, f"first run indexed only {seen}; log:\n{(tmp_path / 'run1.log').read_text()[-3000:]}"
        # Keep producing while the pipeline runs, then kill it without warning.
        for m in messages[300:]:
            prod.send(cfg.kafka.topic, *reversed(submit.encode(m)))
        prod.flush()
        time.sleep(1.0)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
        log1.close()
    killed_at = _count(cfg)
    print(f"\nSIGKILL after {killed_at} of {len(messages)} articles were indexed")

    restarted = time.monotonic()
    second = subprocess.Popen(_run_cmd(cfg), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    try:
        final = _wait_for(cfg, len(messages), second, timeout=300)
        recovery = time.monotonic() - restarted
        # While it still runs, the restarted pipeline commits everything it indexed.
        deadline = time.monotonic() + 60
        lag = ops.consumer_lag(cfg)
        while time.monotonic() < deadline and any(r["lag"] for r in lag):
            time.sleep(1)
            lag = ops.consumer_lag(cfg)
    finally:
        output = _stop(second)
    print(f"restart caught up in {recovery:.1f}s: {final} articles")
    assert final == len(messages), output[-3000:]

    client = open_client(cfg.elasticsearch)
    try:
        index = cfg.elasticsearch.index("articles")
        client.indices.refresh(index=index)
        hits = client.search(index=index, size=2000, source=False)["hits"]["hits"]
    finally:
        client.close()
    ids = [h["_id"] for h in hits]
    assert len(ids) == len(set(ids)) == len(messages)
    assert set(ids) == {m["id"] for m in messages}
    assert all(r["lag"] == 0 for r in lag), lag
    prod.close()
