"""The argv the benchmarks and integration tests use to start ``khabar run`` as a child process."""

from __future__ import annotations

from khabar.cli import build_parser, run_command
from khabar.config import load_config


def test_run_command_round_trips_through_the_parser_without_secrets() -> None:
    cfg = load_config({
        "kafka.bootstrap_servers": "127.0.0.1:1", "kafka.topic": "t", "kafka.dlq_topic": "t.dlq",
        "kafka.group_id": "g", "elasticsearch.url": "https://127.0.0.1:2", "elasticsearch.index_prefix": "p",
        "elasticsearch.chunk_size": 7, "elasticsearch.username": "u", "elasticsearch.password": "s3cret",
    }, environ={})
    argv = run_command(cfg, "--bounded")
    assert "s3cret" not in " ".join(argv)
    assert argv[1:4] == ["-m", "khabar.cli", "run"]
    args = build_parser().parse_args(argv[3:])
    assert args.bounded
    given = {k: v for k, v in vars(args).items() if "." in k and v is not None}
    again = load_config(given, environ={})
    assert (again.kafka, again.elasticsearch.url, again.elasticsearch.index_prefix, again.elasticsearch.chunk_size) \
        == (cfg.kafka, cfg.elasticsearch.url, cfg.elasticsearch.index_prefix, 7)
