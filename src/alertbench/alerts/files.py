"""Find alert packet files: paths, folders and globs of ``.avro`` / ``.avro.gz``."""

from __future__ import annotations

import glob
import gzip
from collections.abc import Iterable
from pathlib import Path

ALERT_SUFFIXES = (".avro", ".avro.gz")


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
