"""Find a Java runtime and check that it is new enough for Kafka 4 and Spark 4."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from alertbench.errors import JavaError

MIN_JAVA = 17

_INSTALL_HINT = (
    "Install a JDK >= 17 (Debian/Ubuntu: `apt-get install openjdk-17-jdk-headless`) "
    "and put `java` on PATH, or set JAVA_HOME / ALERTBENCH_JAVA_HOME to it."
)

# `java -version` prints e.g. `openjdk version "17.0.15" 2025-04-15` or, before
# Java 9, `java version "1.8.0_392"`.
_VERSION_RE = re.compile(r'version "(?P<v>[^"]+)"')


@dataclass(frozen=True)
class Java:
    """A Java runtime that alertbench may use.

    Attributes
    ----------
    executable : Path
        The ``java`` binary.
    version : str
        Its full version string, e.g. ``17.0.15``.
    major : int
        Its feature release, e.g. 17.
    """

    executable: Path
    version: str
    major: int

    @property
    def home(self) -> Path:
        """The JDK folder (``JAVA_HOME``) of ``executable``, symlinks followed."""
        return self.executable.resolve().parent.parent


def parse_java_version(text: str) -> tuple[str, int]:
    """Read the version from the output of ``java -version``.

    Parameters
    ----------
    text : str
        What ``java -version`` printed (it prints to stderr).

    Returns
    -------
    tuple of (str, int)
        The full version string and the major version.

    Raises
    ------
    JavaError
        If no version can be found in ``text``.
    """
    match = _VERSION_RE.search(text)
    if not match:
        raise JavaError(f"cannot read a Java version from `java -version` output: {text!r}")
    full = match.group("v")
    parts = re.split(r"[._+-]", full)
    try:
        major = int(parts[1]) if parts[0] == "1" and len(parts) > 1 else int(parts[0])
    except ValueError:
        raise JavaError(
            f"cannot read a Java version from `java -version` output: {text!r}"
        ) from None
    return full, major


def check_java_version(version: str, major: int, executable: Path) -> None:
    """Refuse a Java older than 17.

    Raises
    ------
    JavaError
        Naming the executable, its version and what to install.
    """
    if major < MIN_JAVA:
        raise JavaError(
            f"Java {version} at {executable} is too old: Kafka 4 and Spark 4 need Java "
            f">= {MIN_JAVA}. {_INSTALL_HINT}"
        )


def find_java(java_home: Path | None = None) -> Java:
    """Locate ``java`` and check it is at least Java 17.

    Parameters
    ----------
    java_home : Path, optional
        A JDK folder to use; otherwise ``JAVA_HOME``, otherwise ``java`` on PATH.

    Returns
    -------
    Java
        The runtime found.

    Raises
    ------
    JavaError
        If Java is missing, does not run, or is older than 17.
    """
    if java_home is not None:
        home, origin = java_home, "the configured java_home"
    elif os.environ.get("JAVA_HOME"):
        home, origin = Path(os.environ["JAVA_HOME"]), "JAVA_HOME"
    else:
        home, origin = None, ""
    if home is not None:
        candidate = home / "bin" / "java"
        if not candidate.is_file():
            raise JavaError(f"no Java at {candidate} (from {origin}={home}). {_INSTALL_HINT}")
        executable = candidate
    else:
        found = shutil.which("java")
        if found is None:
            raise JavaError(f"Java was not found on PATH. {_INSTALL_HINT}")
        executable = Path(found)
    try:
        proc = subprocess.run(
            [str(executable), "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError as exc:
        raise JavaError(f"cannot run {executable}: {exc}. {_INSTALL_HINT}") from exc
    version, major = parse_java_version(proc.stderr + proc.stdout)
    check_java_version(version, major, executable)
    return Java(executable=executable, version=version, major=major)
