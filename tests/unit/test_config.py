from pathlib import Path

import pytest

from khabar.config import ConfigError, ElasticsearchConfig, KafkaConfig, load_config, masked


def test_defaults_without_file_or_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(environ={})
    assert cfg.kafka.topic == "khabar.documents"
    assert cfg.kafka.dlq_topic == "khabar.documents.dlq"
    assert cfg.elasticsearch.index("quotes") == "khabar-quotes"


def test_precedence_flags_over_env_over_file(tmp_path: Path) -> None:
    conf = tmp_path / "k.toml"
    conf.write_text('[kafka]\ntopic = "from-file"\ngroup_id = "g-file"\npartitions = 3\n'
                    '[elasticsearch]\nchunk_size = 100\nurl = "http://file:9200"\n')
    env = {"KHABAR_KAFKA_TOPIC": "from-env", "KHABAR_ELASTICSEARCH_CHUNK_SIZE": "200", "KHABAR_HOME": "/x"}
    cfg = load_config({"kafka.topic": "from-flag", "elasticsearch.url": None}, config_file=conf, environ=env)
    assert cfg.kafka.topic == "from-flag"
    assert cfg.kafka.group_id == "g-file"
    assert cfg.kafka.partitions == 3
    assert cfg.elasticsearch.chunk_size == 200  # env beats file, and is coerced to int
    assert cfg.elasticsearch.url == "http://file:9200"  # a None flag does not override


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    conf = tmp_path / "k.toml"
    conf.write_text('[kafka]\ntopik = "x"\n')
    with pytest.raises(ConfigError, match=r"kafka\.topik"):
        load_config(config_file=conf, environ={})


def test_unknown_section_and_env_variable_are_errors(tmp_path: Path) -> None:
    conf = tmp_path / "k.toml"
    conf.write_text("[kibana]\nurl = 1\n")
    with pytest.raises(ConfigError, match="kibana"):
        load_config(config_file=conf, environ={})
    with pytest.raises(ConfigError, match="KHABAR_KAFKA_TOPICS"):
        load_config(environ={"KHABAR_KAFKA_TOPICS": "x"})


def test_bad_values_fail_at_construction() -> None:
    with pytest.raises(ConfigError):
        KafkaConfig(topic="t", dlq_topic="t")
    with pytest.raises(ConfigError):
        ElasticsearchConfig(index_prefix="Khabar")
    with pytest.raises(ConfigError, match="chunk_size"):
        load_config({"elasticsearch.chunk_size": "many"}, environ={})


def test_secrets_from_files_and_masked(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    cfg = load_config(environ={"KHABAR_ELASTICSEARCH_USERNAME": "elastic",
                               "KHABAR_ELASTICSEARCH_PASSWORD_FILE": str(secret)})
    assert cfg.elasticsearch.password == "s3cret"
    assert cfg.elasticsearch.client_options()["basic_auth"] == ("elastic", "s3cret")
    shown = masked(cfg)
    assert shown["elasticsearch"]["password"] == "***"
    assert "s3cret" not in repr(cfg)
