"""Security settings of the configuration: SASL mechanisms, CA files, verification on by default."""

from __future__ import annotations

from pathlib import Path

import pytest

from khabar.config import ConfigError, ElasticsearchConfig, KafkaConfig, load_config, masked


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return path


def test_sasl_ssl_scram_from_environment_with_password_file(tmp_path: Path, ca: Path) -> None:
    secret = tmp_path / "kafka.password"
    secret.write_text("s3cret-value\n")
    cfg = load_config(environ={
        "KHABAR_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KHABAR_KAFKA_SASL_MECHANISM": "scram-sha-512",
        "KHABAR_KAFKA_SASL_USERNAME": "khabar",
        "KHABAR_KAFKA_SASL_PASSWORD_FILE": str(secret),
        "KHABAR_KAFKA_SSL_CAFILE": str(ca),
    })
    opts = cfg.kafka.client_options()
    assert opts["security_protocol"] == "SASL_SSL"
    assert opts["sasl_mechanism"] == "SCRAM-SHA-512"  # normalised
    assert opts["sasl_plain_username"] == "khabar" and opts["sasl_plain_password"] == "s3cret-value"
    assert opts["ssl_cafile"] == str(ca)
    assert "s3cret-value" not in repr(cfg)
    assert masked(cfg)["kafka"]["sasl_password"] == "***"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"security_protocol": "SASL_SSL"}, "needs kafka.sasl_mechanism"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "u"},
         "kafka.sasl_password"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", "sasl_username": "u", "sasl_password": "pw-77x"},
         "unknown mechanism"),
        ({"security_protocol": "PLAINTEXT", "ssl_cafile": "CA"}, "does not use TLS"),
        ({"security_protocol": "SSL", "ssl_cafile": "/no/such/ca.pem"}, "no such file"),
    ],
)
def test_kafka_security_errors_name_the_key(kwargs: dict, message: str, ca: Path) -> None:
    if kwargs.get("ssl_cafile") == "CA":
        kwargs = {**kwargs, "ssl_cafile": str(ca)}
    with pytest.raises(ConfigError, match=message) as caught:
        KafkaConfig(**kwargs)
    assert "pw-77x" not in str(caught.value)  # messages name keys, never a password value


def test_kafka_ssl_without_cafile_uses_system_trust() -> None:
    opts = KafkaConfig(security_protocol="SSL").client_options()
    assert opts["security_protocol"] == "SSL" and "ssl_cafile" not in opts


def test_elasticsearch_tls_options(ca: Path) -> None:
    cfg = ElasticsearchConfig(url="https://127.0.0.1:28200", username="khabar", password="pw", ca_certs=str(ca))
    opts = cfg.client_options()
    assert opts["ca_certs"] == str(ca) and opts["basic_auth"] == ("khabar", "pw")
    assert "verify_certs" not in opts  # on by default: the client verifies unless told otherwise
    assert ElasticsearchConfig(url="https://h:9200", verify_certs=False).client_options()["verify_certs"] is False
    keyed = ElasticsearchConfig(url="https://h:9200", username="khabar", password="pw", api_key="a2V5").client_options()
    assert keyed["api_key"] == "a2V5" and "basic_auth" not in keyed
    with pytest.raises(ConfigError, match="not https"):
        ElasticsearchConfig(url="http://127.0.0.1:9200", ca_certs=str(ca))
    with pytest.raises(ConfigError, match="no such file"):
        ElasticsearchConfig(url="https://127.0.0.1:9200", ca_certs="/no/such/ca.pem")


def test_api_key_from_file(tmp_path: Path) -> None:
    key = tmp_path / "api_key"
    key.write_text("aWQ6a2V5\n")
    cfg = load_config(environ={"KHABAR_ELASTICSEARCH_URL": "https://127.0.0.1:28200",
                               "KHABAR_ELASTICSEARCH_API_KEY_FILE": str(key)})
    assert cfg.elasticsearch.client_options()["api_key"] == "aWQ6a2V5"
    assert masked(cfg)["elasticsearch"]["api_key"] == "***"
