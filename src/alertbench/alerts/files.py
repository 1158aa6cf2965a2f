"""Find alert packet files: paths, folders and globs of ``.avro`` / ``.avro.gz``.

Without alerts of a user's own, commands fall back on the small sample of real
public alerts shipped as package data (:data:`SAMPLE_DIR`, see its README).
"""

from __future__ import annotations

import glob
import gzip
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ALERT_SUFFIXES = (".avro", ".avro.gz")
# Real public alerts shipped with alertbench: ztf/ (ZTF 4.02), lsst/ (LSSTCam).
SAMPLE_DIR = Path(__file__).parent / "sample"


class AlertSourceError(ValueError):
    """An alert source names nothing readable."""


def is_alert_file(path: Path) -> bool:
    """Tell whether ``path`` has an alert packet suffix."""
    return path.name.endswith(ALERT_SUFFIXES)


def find_alert_files(sources: Iterable[str | Path]) -> list[Path]:
    """Expand paths, folders (searched recursively) and globs into alert files.

    Parameters
    ----------
    sources : iterable of str or Path
        Each a file (taken whatever its name: the user named it), a folder or a
        glob pattern (both filtered to alert suffixes).

    Returns
    -------
    list of Path
        Alert files, sorted and without duplicates, in source order.

    Raises
    ------
    AlertSourceError
        If a source matches no alert file; the message names it.
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for source in sources:
        text = str(source)
        path = Path(text).expanduser()
        if path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.is_file() and is_alert_file(p))
        elif path.is_file():
            matches = [path]
        elif glob.has_magic(text):
            matches = sorted(
                Path(p) for p in glob.glob(str(path), recursive=True) if is_alert_file(Path(p))
            )
        else:
            raise AlertSourceError(
                f"alert source {text!r} does not exist; give a file, a folder or a glob of "
                f"{' / '.join(ALERT_SUFFIXES)} files."
            )
        if not matches:
            raise AlertSourceError(
                f"alert source {text!r} holds no {' / '.join(ALERT_SUFFIXES)} files."
            )
        for m in matches:
            if m not in seen:
                seen.add(m)
                found.append(m)
    return found


def read_packet(path: Path) -> bytes:
    """The bytes of one alert file as distributed (``.avro.gz`` is decompressed)."""
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def absolute_sources(sources: Iterable[str | Path]) -> list[str]:
    """Sources (paths, folders or globs) made absolute against the working directory.

    A glob stays a glob: only its leading part is anchored, so it expands the
    same from any folder a child process runs in.
    """
    return [os.path.abspath(Path(str(s)).expanduser()) for s in sources]


def sample_alerts(survey: str = "ztf") -> Path:
    """The folder of the shipped sample's alerts of ``survey`` (``ztf`` or ``lsst``)."""
    return SAMPLE_DIR / survey


@dataclass(frozen=True)
class AlertSources:
    """The alert sources a command replays, and whether they are the shipped sample."""

    paths: list[str]
    sample: bool

    def describe(self) -> str:
        """One line saying where the alerts come from, for people."""
        if not self.sample:
            return f"alerts from {', '.join(self.paths)}"
        count = len(find_alert_files(self.paths))
        return (
            f"no alerts given (--alerts or ALERTBENCH_ALERTS): using the {count} real ZTF alerts "
            f"shipped with alertbench ({self.paths[0]}) as templates; give a night of your own, "
            "or `alertbench data fetch ztf`, for real volumes"
        )


def alert_sources(given: Iterable[str] | None, configured: Path | None) -> AlertSources:
    """What to replay: the sources given on the command line, else configured, else the sample.

    Parameters
    ----------
    given : iterable of str, optional
        ``--alerts`` values: files, folders or globs, relative to the working directory.
    configured : Path, optional
        ``alerts`` from the configuration (already absolute).

    Returns
    -------
    AlertSources
        Absolute sources, so child processes in other folders find them.
    """
    chosen = list(given or [])
    if chosen:
        return AlertSources(absolute_sources(chosen), sample=False)
    if configured is not None:
        return AlertSources(absolute_sources([configured]), sample=False)
    return AlertSources([str(sample_alerts("ztf"))], sample=True)
