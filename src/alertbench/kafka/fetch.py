"""Get a runnable Apache Kafka: resolved from Maven Central, or an unpacked distribution.

Resolution is Maven's own: a generated POM and ``maven-dependency-plugin``'s
``copy-dependencies``. If ``mvn`` is not installed, the official Maven
distribution is downloaded once from the same repository (checksum verified).
Kafka's POM leaves out the SLF4J logging binding its tarball ships, so a second
resolution adds the binding that matches the logging library Kafka pulled in.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from alertbench.config import Settings
from alertbench.errors import FetchError
from alertbench.java import Java, find_java
from alertbench.kafka.release import KafkaRelease, parse_release

MAVEN_VERSION = "3.9.11"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
RELOAD4J_VERSION = "1.2.25"
MANIFEST = "manifest.json"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class KafkaInstall:
    """A Kafka whose jars are on this machine.

    Attributes
    ----------
    release : KafkaRelease
        Its version.
    lib_dir : Path
        Folder of jars: the classpath is ``lib_dir/*``.
    source : str
        ``maven`` (fetched into the cache) or ``home`` (an unpacked distribution).
    """

    release: KafkaRelease
    lib_dir: Path
    source: str

    @property
    def classpath(self) -> str:
        """The JVM classpath for Kafka's servers and tools."""
        return str(self.lib_dir / "*")

    @property
    def jars(self) -> list[Path]:
        """Every jar on the classpath, sorted by name."""
        return sorted(self.lib_dir.glob("*.jar"))


def kafka_cache_dir(settings: Settings, version: str) -> Path:
    """Folder where Kafka ``version`` is kept once fetched."""
    return settings.cache_dir / "kafka" / version


def installed_kafka(settings: Settings, version: str) -> KafkaInstall | None:
    """Return Kafka ``version`` if a complete fetch of it is in the cache, else ``None``."""
    base = kafka_cache_dir(settings, version)
    manifest = base / MANIFEST
    if not manifest.is_file():
        return None
    try:
        jars = json.loads(manifest.read_text())["jars"]
    except (ValueError, KeyError):
        return None
    lib = base / "libs"
    if not jars or not all((lib / j).is_file() for j in jars):
        return None
    return KafkaInstall(release=parse_release(version), lib_dir=lib, source="maven")


def kafka_from_home(home: Path) -> KafkaInstall:
    """Use an unpacked official Kafka distribution (the ``KAFKA_HOME`` layout).

    Parameters
    ----------
    home : Path
        Folder with ``libs/kafka_2.13-VERSION.jar`` inside.

    Returns
    -------
    KafkaInstall

    Raises
    ------
    FetchError
        If ``home`` does not look like a Kafka distribution.
    """
    lib = home / "libs"
    cores = sorted(lib.glob("kafka_2.*-*.jar"))
    cores = [c for c in cores if not re.search(r"-(sources|javadoc|test)\.jar$", c.name)]
    if not cores:
        raise FetchError(
            f"{home} is not an unpacked Kafka distribution: no {lib}/kafka_2.13-*.jar. "
            "Point KAFKA_HOME / --kafka-home at the folder that holds bin/, config/ and libs/."
        )
    version = re.sub(r"^kafka_2\.\d+-", "", cores[-1].stem)
    return KafkaInstall(release=parse_release(version), lib_dir=lib, source="home")


def resolve_kafka(settings: Settings, version: str | None = None) -> KafkaInstall:
    """Return a usable Kafka without touching the network if possible.

    Uses ``kafka.home`` (or ``KAFKA_HOME``) when set, else the cache, else fetches.

    Parameters
    ----------
    settings : Settings
        The configuration.
    version : str, optional
        Kafka version; defaults to ``settings.kafka.version``.

    Returns
    -------
    KafkaInstall
    """
    home = settings.kafka.home or (
        Path(os.environ["KAFKA_HOME"]) if os.environ.get("KAFKA_HOME") else None
    )
    if home is not None:
        return kafka_from_home(home)
    return fetch_kafka(settings, version or settings.kafka.version)


def fetch_kafka(
    settings: Settings,
    version: str,
    *,
    java: Java | None = None,
    progress: Progress | None = None,
) -> KafkaInstall:
    """Resolve Kafka ``version`` and its runtime dependencies into the cache.

    Idempotent: a complete earlier fetch is returned without any network access.

    Parameters
    ----------
    settings : Settings
        Supplies the cache folder and the Maven repository.
    version : str
        Kafka version, e.g. ``4.3.1``.
    java : Java, optional
        The JDK Maven runs on; found if not given.
    progress : callable, optional
        Called with a short message at each step.

    Returns
    -------
    KafkaInstall

    Raises
    ------
    ConfigError
        If ``version`` is malformed.
    FetchError
        If Maven cannot resolve it: unknown version, unreachable repository.
    """
    release = parse_release(version)
    done = installed_kafka(settings, release.version)
    if done is not None:
        return done
    say = progress or (lambda _msg: None)
    java = java or find_java(settings.java_home)
    mvn = find_maven(settings, progress=say)
    base = kafka_cache_dir(settings, release.version)
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=base))
    try:
        say(f"resolving Kafka {release.version} and its dependencies with Maven")
        copy_dependencies(settings, mvn, java, release.artifacts(), staging, transitive=True)
        bindings = logging_bindings(release, [p.name for p in staging.glob("*.jar")])
        if bindings:
            say("adding the logging binding Kafka's POM leaves out")
            copy_dependencies(settings, mvn, java, bindings, staging, transitive=False)
        lib = base / "libs"
        shutil.rmtree(lib, ignore_errors=True)
        staging.replace(lib)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    jars = sorted(p.name for p in lib.glob("*.jar"))
    manifest = {
        "version": release.version,
        "artifacts": release.artifacts() + bindings,
        "repository": settings.kafka.maven_repository,
        "jars": jars,
        "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (base / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return KafkaInstall(release=release, lib_dir=lib, source="maven")


def logging_bindings(release: KafkaRelease, jar_names: list[str]) -> list[str]:
    """The SLF4J binding artifacts to add to a resolved Kafka classpath.

    Parameters
    ----------
    release : KafkaRelease
        The Kafka version resolved.
    jar_names : list of str
        File names of the resolved jars (Maven ``prependGroupId`` style).

    Returns
    -------
    list of str
        Maven coordinates; empty when a binding is already there.
    """
    names = " ".join(jar_names)
    if re.search(r"log4j-slf4j2?-impl|slf4j-reload4j|slf4j-log4j12", names):
        return []
    slf4j = re.search(r"org\.slf4j\.slf4j-api-([\d.]+)\.jar", names)
    slf4j_version = slf4j[1] if slf4j else "1.7.36"
    if release.uses_log4j2:
        core = re.search(r"org\.apache\.logging\.log4j\.log4j-core-([\d.]+)\.jar", names)
        if core is None:
            raise FetchError(
                f"Kafka {release.version} resolved without log4j-core; cannot pick a logging "
                "binding. Use an unpacked distribution instead (--kafka-home)."
            )
        impl = "log4j-slf4j2-impl" if slf4j_version.startswith("2.") else "log4j-slf4j-impl"
        return [f"org.apache.logging.log4j:{impl}:{core[1]}"]
    return [
        f"org.slf4j:slf4j-reload4j:{slf4j_version}",
        f"ch.qos.reload4j:reload4j:{RELOAD4J_VERSION}",
    ]


def _pom(artifacts: list[str]) -> str:
    deps = []
    for coord in artifacts:
        group, artifact, version = coord.split(":")
        deps.append(
            "    <dependency>"
            f"<groupId>{escape(group)}</groupId><artifactId>{escape(artifact)}</artifactId>"
            f"<version>{escape(version)}</version></dependency>"
        )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        "  <groupId>alertbench.runtime</groupId><artifactId>kafka</artifactId>"
        "<version>1</version>\n  <packaging>pom</packaging>\n  <dependencies>\n"
        + "\n".join(deps)
        + "\n  </dependencies>\n</project>\n"
    )


def _maven_settings(repository: str) -> str:
    # A mirror of every repository: plugins and artifacts all come from the
    # configured one, so a corporate mirror works by changing one setting.
    return (
        "<settings><mirrors><mirror><id>alertbench</id><mirrorOf>*</mirrorOf>"
        f"<url>{escape(repository)}</url></mirror></mirrors></settings>\n"
    )


def copy_dependencies(
    settings: Settings,
    mvn: Path,
    java: Java,
    artifacts: list[str],
    out: Path,
    *,
    transitive: bool,
) -> None:
    """Have Maven copy ``artifacts`` (and, if ``transitive``, their dependencies) into ``out``.

    Raises
    ------
    FetchError
        If Maven cannot resolve them; the message says why and what to do.
    """
    work = Path(tempfile.mkdtemp(prefix="mvn-", dir=out.parent))
    try:
        (work / "pom.xml").write_text(_pom(artifacts))
        (work / "settings.xml").write_text(_maven_settings(settings.kafka.maven_repository))
        argv = [
            str(mvn),
            "-B",
            "-q",
            "-s",
            str(work / "settings.xml"),
            f"-Dmaven.repo.local={settings.cache_dir / 'maven-repository'}",
            "-f",
            str(work / "pom.xml"),
            f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            "-DincludeScope=runtime",
            "-Dmdep.prependGroupId=true",
            f"-DexcludeTransitive={'false' if transitive else 'true'}",
            f"-DoutputDirectory={out}",
        ]
        env = dict(os.environ, JAVA_HOME=str(java.home))
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=1800, env=env, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise FetchError(
                f"Maven did not finish resolving {', '.join(artifacts)} in 30 minutes; "
                f"check the connection to {settings.kafka.maven_repository}."
            ) from exc
        if proc.returncode != 0:
            raise FetchError(explain_maven_failure(proc.stdout + proc.stderr, artifacts, settings))
    finally:
        shutil.rmtree(work, ignore_errors=True)


_UNREACHABLE = re.compile(
    r"(Could not transfer|Connection refused|Connect to .* failed|UnknownHost|Unknown host|"
    r"Network is unreachable|timed out|No route to host|PKIX path)",
    re.IGNORECASE,
)


def explain_maven_failure(output: str, artifacts: list[str], settings: Settings) -> str:
    """Turn Maven's output into one message that says what is wrong.

    Parameters
    ----------
    output : str
        Maven's stdout and stderr.
    artifacts : list of str
        What was being resolved.
    settings : Settings
        For the repository URL.

    Returns
    -------
    str
        The message.
    """
    repo = settings.kafka.maven_repository
    missing = re.search(r"Could not find artifact ([^\s]+)", output) or re.search(
        r"The following artifacts could not be resolved: ([^\s,]+)", output
    )
    if missing and not _UNREACHABLE.search(output):
        return (
            f"{missing[1]} is not in {repo}: the version does not exist there. "
            "Pick a released Kafka version (e.g. 4.3.1, or 3.9.2 for ZooKeeper mode)."
        )
    if _UNREACHABLE.search(output):
        return (
            f"cannot reach the Maven repository {repo} to fetch {', '.join(artifacts)}. "
            "Check the network or proxy, set ALERTBENCH_KAFKA__MAVEN_REPOSITORY to a mirror, "
            "or use an unpacked Kafka distribution with --kafka-home / KAFKA_HOME."
        )
    errors = [ln for ln in output.splitlines() if "ERROR" in ln][:8]
    return "Maven failed to resolve " + ", ".join(artifacts) + ":\n" + "\n".join(errors or [output])


def find_maven(settings: Settings, *, progress: Progress | None = None) -> Path:
    """Find ``mvn``: configured, on PATH, or downloaded once into the cache.

    Parameters
    ----------
    settings : Settings
        ``kafka.maven``, the cache folder and the repository to download from.
    progress : callable, optional
        Called with a message when Maven is downloaded.

    Returns
    -------
    Path
        The ``mvn`` executable.

    Raises
    ------
    FetchError
        If the configured Maven is missing or the download fails.
    """
    if settings.kafka.maven is not None:
        if not settings.kafka.maven.is_file():
            raise FetchError(f"kafka.maven points at {settings.kafka.maven}, which does not exist.")
        return settings.kafka.maven
    on_path = shutil.which("mvn")
    if on_path:
        return Path(on_path)
    home = settings.cache_dir / "maven" / f"apache-maven-{MAVEN_VERSION}"
    mvn = home / "bin" / "mvn"
    if mvn.is_file():
        return mvn
    (progress or (lambda _m: None))(f"downloading Apache Maven {MAVEN_VERSION}")
    name = f"apache-maven-{MAVEN_VERSION}-bin.tar.gz"
    url = (
        f"{settings.kafka.maven_repository.rstrip('/')}/org/apache/maven/apache-maven/"
        f"{MAVEN_VERSION}/{name}"
    )
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            data = resp.read()
        with urllib.request.urlopen(url + ".sha512", timeout=60) as resp:
            expected = resp.read().decode().split()[0].strip().lower()
    except (urllib.error.URLError, OSError) as exc:
        raise FetchError(
            f"Maven is not installed and cannot be downloaded from {url}: {exc}. Install Maven "
            "(`apt-get install maven`), or use an unpacked Kafka with --kafka-home."
        ) from exc
    if hashlib.sha512(data).hexdigest() != expected:
        raise FetchError(f"checksum mismatch for {url}; refusing to use it.")
    home.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=home.parent) as tmp:
        archive = Path(tmp) / name
        archive.write_bytes(data)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        shutil.rmtree(home, ignore_errors=True)
        (Path(tmp) / home.name).replace(home)
    mvn.chmod(0o755)
    return mvn
