"""Configuration: frozen dataclasses, loaded from flags, then ``KHABAR_*`` variables, then a TOML file.

Precedence is command-line flags over environment variables over the config file over defaults.
Every key has the form ``section.name`` (``kafka.bootstrap_servers``); the matching environment
variable is ``KHABAR_SECTION_NAME`` (``KHABAR_KAFKA_BOOTSTRAP_SERVERS``). Unknown keys in the file,
or unknown ``KHABAR_KAFKA_*``/``KHABAR_ELASTICSEARCH_*``/``KHABAR_PIPELINE_*`` variables, are errors
that name the key, raised before any pipeline is built.

Secrets (``elasticsearch.password``, ``elasticsearch.api_key``, ``kafka.sasl_password``) may also be
given as ``*_file`` keys naming a file to read, so they never need to appear on a command line.

Example file (``khabar.toml``)::

    [kafka]
    bootstrap_servers = "127.0.0.1:9092"
    topic = "khabar.documents"

    [elasticsearch]
    url = "http://127.0.0.1:9200"
    chunk_size = 500
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomllib

SECRET_KEYS = frozenset({"password", "api_key", "sasl_password"})
ENV_PREFIX = "KHABAR_"
DEFAULT_CONFIG_FILES = ("khabar.toml",)
# Variables of the local service launcher (khabar.deploy.local.services), not pipeline settings.
LAUNCHER_VARIABLES = frozenset({
    "KHABAR_KAFKA_PORT", "KHABAR_KAFKA_CONTROLLER_PORT", "KHABAR_KAFKA_HEAP", "KHABAR_KAFKA_VERSION",
})


SASL_MECHANISMS = frozenset({"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"})


class ConfigError(ValueError):
    """A configuration value or key is invalid."""


def _check_file(name: str, path: str) -> None:
    if not Path(path).expanduser().is_file():
        raise ConfigError(f"{name}: no such file {path}")


def _check_positive(name: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value!r}")


@dataclass(frozen=True)
class KafkaConfig:
    """Where documents come from and where dead letters go.

    Attributes:
        bootstrap_servers: Comma-separated ``host:port`` list.
        topic: The topic documents are read from.
        dlq_topic: The dead-letter topic.
        group_id: Consumer group whose offsets record what has been indexed.
        partitions: Topic partitions created by ``khabar setup``.
        poll_timeout_ms: How long one poll blocks when the topic is idle.
        max_records_per_poll: Upper bound of records one read step claims before it checkpoints.
        security_protocol: ``PLAINTEXT``, ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL``.
        sasl_mechanism: ``PLAIN``, ``SCRAM-SHA-256`` or ``SCRAM-SHA-512``; required with the SASL protocols.
        sasl_username: The SASL user; ``sasl_password`` (or ``sasl_password_file``) its password.
        ssl_cafile: PEM file of the CA that signed the broker's certificate (``SSL``/``SASL_SSL``);
            without it the system's trusted CAs are used. Certificates and host names are always verified.
    """

    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = "khabar.documents"
    dlq_topic: str = "khabar.documents.dlq"
    group_id: str = "khabar-ingest"
    partitions: int = 4
    poll_timeout_ms: int = 1000
    max_records_per_poll: int = 500
    max_message_bytes: int = 16 * 1024 * 1024
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None

    def __post_init__(self) -> None:
        if not self.bootstrap_servers.strip():
            raise ConfigError("kafka.bootstrap_servers must not be empty")
        if self.topic == self.dlq_topic:
            raise ConfigError("kafka.dlq_topic must differ from kafka.topic")
        _check_positive("kafka.partitions", self.partitions)
        _check_positive("kafka.poll_timeout_ms", self.poll_timeout_ms)
        _check_positive("kafka.max_records_per_poll", self.max_records_per_poll)
        if self.security_protocol not in {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}:
            raise ConfigError(f"kafka.security_protocol: unknown protocol {self.security_protocol!r}")
        sasl = self.security_protocol.startswith("SASL_")
        if self.sasl_mechanism is not None:
            object.__setattr__(self, "sasl_mechanism", self.sasl_mechanism.strip().upper())
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise ConfigError(f"kafka.sasl_mechanism: unknown mechanism {self.sasl_mechanism!r} "
                                  f"(known: {', '.join(sorted(SASL_MECHANISMS))})")
        if sasl:
            if not self.sasl_mechanism:
                raise ConfigError(f"kafka.security_protocol {self.security_protocol} needs kafka.sasl_mechanism")
            if not self.sasl_username or not self.sasl_password:
                # Named without the value: a half-configured secret must not end up in an error message.
                raise ConfigError("kafka.sasl_username and kafka.sasl_password (or KHABAR_KAFKA_SASL_PASSWORD_FILE) "
                                  f"are required with kafka.security_protocol {self.security_protocol}")
        if self.ssl_cafile:
            if not self.security_protocol.endswith("SSL"):
                raise ConfigError(f"kafka.ssl_cafile is set but kafka.security_protocol is "
                                  f"{self.security_protocol}, which does not use TLS")
            _check_file("kafka.ssl_cafile", self.ssl_cafile)

    def client_options(self) -> dict[str, Any]:
        """Options shared by every kafka-python client built from this config."""
        opts: dict[str, Any] = {
            "bootstrap_servers": [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()],
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            opts.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                        sasl_plain_password=self.sasl_password)
        if self.ssl_cafile:
            opts["ssl_cafile"] = self.ssl_cafile
        return opts


@dataclass(frozen=True)
class ElasticsearchConfig:
    """Where enriched documents are written.

    Attributes:
        url: One or more comma-separated Elasticsearch URLs.
        index_prefix: Indices are ``{prefix}-articles``, ``{prefix}-entities``, ``{prefix}-quotes``.
        chunk_size: Documents per bulk request.
        max_chunk_bytes: Bytes per bulk request.
        max_retries: Retries of a transient failure (429, 5xx, connection) before the bundle fails.
        initial_backoff: Seconds before the first retry; doubles each time, with jitter.
        max_backoff: Upper bound of one wait.
        retry_deadline: Seconds a batch may spend retrying in all before the bundle fails.
        username: Basic-auth user; ``password`` (or ``password_file``) its password.
        api_key: An API key (the ``encoded`` form, or ``id:key``); wins over basic auth.
        ca_certs: PEM file of the CA that signed the cluster's certificate (``https://`` URLs only).
        verify_certs: Certificate verification, on by default; turning it off is explicit.
    """

    url: str = "http://127.0.0.1:9200"
    index_prefix: str = "khabar"
    chunk_size: int = 500
    max_chunk_bytes: int = 10 * 1024 * 1024
    max_retries: int = 8
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    retry_deadline: float = 180.0
    request_timeout: float = 30.0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    ca_certs: str | None = None
    verify_certs: bool = True

    def __post_init__(self) -> None:
        if not self.url.strip():
            raise ConfigError("elasticsearch.url must not be empty")
        if not self.index_prefix or self.index_prefix != self.index_prefix.lower():
            raise ConfigError("elasticsearch.index_prefix must be non-empty lower case")
        _check_positive("elasticsearch.chunk_size", self.chunk_size)
        _check_positive("elasticsearch.max_chunk_bytes", self.max_chunk_bytes)
        if self.max_retries < 0:
            raise ConfigError("elasticsearch.max_retries must be >= 0")
        if self.ca_certs:
            if any(not u.strip().lower().startswith("https://") for u in self.url.split(",") if u.strip()):
                raise ConfigError("elasticsearch.ca_certs is set but elasticsearch.url is not https://")
            _check_file("elasticsearch.ca_certs", self.ca_certs)

    def index(self, kind: str) -> str:
        """Name of the index for ``articles``, ``entities`` or ``quotes``."""
        return f"{self.index_prefix}-{kind}"

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for ``elasticsearch.Elasticsearch``."""
        opts: dict[str, Any] = {
            "hosts": [u.strip() for u in self.url.split(",") if u.strip()],
            "request_timeout": self.request_timeout,
        }
        if self.api_key:
            opts["api_key"] = self.api_key
        elif self.username:
            opts["basic_auth"] = (self.username, self.password or "")
        if self.ca_certs:
            opts["ca_certs"] = self.ca_certs
        if not self.verify_certs:
            opts["verify_certs"] = False
        return opts


@dataclass(frozen=True)
class PipelineConfig:
    """Limits and behaviour of the ingest pipeline.

    Attributes:
        max_text_chars: Messages whose text is longer are dead-lettered (stage ``validate``).
        max_payload_bytes: Raw messages larger than this are dead-lettered before parsing.
        max_json_depth: Deeper JSON is dead-lettered (stage ``parse``).
        enrich_timeout_s: Time budget of one document's enrichment, in seconds; a document that
            takes longer is interrupted and dead-lettered (stage ``enrich``, reason "time budget
            exceeded") while the worker goes on. ``0`` disables the budget. See ``khabar.timebudget``.
    """

    max_text_chars: int = 1_000_000
    max_payload_bytes: int = 8 * 1024 * 1024
    max_json_depth: int = 32
    enrich_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        _check_positive("pipeline.max_text_chars", self.max_text_chars)
        _check_positive("pipeline.max_payload_bytes", self.max_payload_bytes)
        _check_positive("pipeline.max_json_depth", self.max_json_depth)
        if self.enrich_timeout_s < 0:
            raise ConfigError("pipeline.enrich_timeout_s must be >= 0 (0 disables it), "
                              f"got {self.enrich_timeout_s!r}")


@dataclass(frozen=True)
class KhabarConfig:
    """The whole effective configuration."""

    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    elasticsearch: ElasticsearchConfig = field(default_factory=ElasticsearchConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)


_SECTIONS: dict[str, type] = {
    "kafka": KafkaConfig,
    "elasticsearch": ElasticsearchConfig,
    "pipeline": PipelineConfig,
}


def _coerce(section: str, name: str, value: Any, target: Any) -> Any:
    """Turn a string from the environment or a flag into the field's declared type."""
    if not isinstance(value, str):
        return value
    kind = str(target)
    try:
        if kind.startswith("int"):
            return int(value)
        if kind.startswith("float"):
            return float(value)
        if kind.startswith("bool"):
            if value.lower() in {"1", "true", "yes", "on"}:
                return True
            if value.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
    except ValueError as exc:
        raise ConfigError(f"{section}.{name}: cannot read {value!r} as {kind}") from exc
    return value


def _field_types(cls: type) -> dict[str, Any]:
    return {f.name: f.type for f in fields(cls)}


def _read_secret_file(section: str, name: str, path: str) -> str:
    try:
        return Path(path).expanduser().read_text("utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{section}.{name}_file: cannot read {path}: {exc.strerror}") from exc


def _layer_from_mapping(data: Mapping[str, Any], origin: str) -> dict[str, dict[str, Any]]:
    layer: dict[str, dict[str, Any]] = {}
    for section, values in data.items():
        if section not in _SECTIONS:
            raise ConfigError(f"{origin}: unknown section {section!r} (known: {', '.join(_SECTIONS)})")
        if not isinstance(values, Mapping):
            raise ConfigError(f"{origin}: [{section}] must be a table")
        known = _field_types(_SECTIONS[section])
        for key, value in values.items():
            if key.endswith("_file") and key[: -len("_file")] in SECRET_KEYS & known.keys():
                layer.setdefault(section, {})[key[: -len("_file")]] = _read_secret_file(section, key[:-5], value)
            elif key not in known:
                raise ConfigError(f"{origin}: unknown key {section}.{key}")
            else:
                layer.setdefault(section, {})[key] = _coerce(section, key, value, known[key])
    return layer


def _layer_from_env(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    layer: dict[str, dict[str, Any]] = {}
    for var, value in environ.items():
        if not var.startswith(ENV_PREFIX) or var in LAUNCHER_VARIABLES:
            continue
        rest = var[len(ENV_PREFIX):].lower()
        section = next((s for s in _SECTIONS if rest.startswith(s + "_")), None)
        if section is None:
            continue  # other KHABAR_* variables (KHABAR_HOME, ...) belong to other tools
        key = rest[len(section) + 1:]
        known = _field_types(_SECTIONS[section])
        if key.endswith("_file") and key[:-5] in SECRET_KEYS & known.keys():
            layer.setdefault(section, {})[key[:-5]] = _read_secret_file(section, key[:-5], value)
        elif key not in known:
            raise ConfigError(f"environment: unknown variable {var} (no key {section}.{key})")
        else:
            layer.setdefault(section, {})[key] = _coerce(section, key, value, known[key])
    return layer


def load_config(
    overrides: Mapping[str, Any] | None = None,
    *,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> KhabarConfig:
    """Build the effective configuration.

    Args:
        overrides: ``{"kafka.topic": "x", ...}`` from command-line flags; ``None`` values are ignored.
        config_file: A TOML file; defaults to ``$KHABAR_CONFIG`` or ``./khabar.toml`` when present.
        environ: The environment (``os.environ`` by default).

    Returns:
        The validated, frozen configuration.

    Raises:
        ConfigError: An unknown key or a bad value, naming it.
    """
    environ = os.environ if environ is None else environ
    merged: dict[str, dict[str, Any]] = {s: {} for s in _SECTIONS}
    path = config_file or environ.get("KHABAR_CONFIG")
    if path is None:
        path = next((p for p in DEFAULT_CONFIG_FILES if Path(p).is_file()), None)
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text("utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        for section, values in _layer_from_mapping(data, str(path)).items():
            merged[section].update(values)
    for section, values in _layer_from_env(environ).items():
        merged[section].update(values)
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        if section not in _SECTIONS or key not in _field_types(_SECTIONS[section]):
            raise ConfigError(f"unknown key {dotted}")
        merged[section][key] = _coerce(section, key, value, _field_types(_SECTIONS[section])[key])
    try:
        return KhabarConfig(**{s: _SECTIONS[s](**merged[s]) for s in _SECTIONS})
    except TypeError as exc:  # a wrong type that dataclasses did not catch
        raise ConfigError(str(exc)) from exc


def redact_url(url: str) -> str:
    """A URL (or comma-separated URLs) with any ``user:password@`` replaced by ``***@``, for printing.

    Everything up to the last ``@`` of each URL goes, so an unescaped ``/`` or ``@`` in a password
    cannot leave part of it behind (an ``@`` in a path is over-redacted, which is harmless).
    """
    return ",".join(_USERINFO.sub(r"\1***@", part) for part in url.split(","))


_USERINFO = re.compile(r"^(\s*(?:[A-Za-z][\w+.-]*://)?).*@")


def masked(config: KhabarConfig) -> dict[str, dict[str, Any]]:
    """The configuration as a dict with every secret replaced by ``'***'``, also inside URLs."""
    out = dataclasses.asdict(config)
    for values in out.values():
        for key in values:
            if key in SECRET_KEYS and values[key]:
                values[key] = "***"
            elif key in ("url", "bootstrap_servers") and isinstance(values[key], str):
                values[key] = redact_url(values[key])
    return out
