"""Stream alerts out of a public ZTF nightly archive without downloading the whole night.

The ZTF alert archive serves one ``ztf_public_YYYYMMDD.tar.gz`` per night: a
gzip-compressed tar of one Avro file per alert, often tens of GB. Reading it
as a stream lets us keep the first alerts and hang up, so fetching a thousand
alerts costs about a thousand alerts of download.

This package is the bottom layer: this module imports nothing else of
alertbench, and callers turn :class:`ArchiveError` into their own errors.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

#: The environment variable that points alertbench at another archive; named in messages.
ARCHIVE_URL_ENV = "ALERTBENCH_ZTF_ARCHIVE_URL"
ALERT_SUFFIX = ".avro"

_CHUNK = 1 << 16
# zlib window bits for a gzip stream: header and trailer (CRC-32, length) are checked.
_GZIP_WBITS = 16 + zlib.MAX_WBITS
# Report download progress between alerts at most this often (bytes), so a caller's
# progress bar is not redrawn for every socket read of a night of tens of GB.
_PROGRESS_STEP = 1 << 18


class ArchiveError(Exception):
    """A nightly archive could not be fetched or read; the message says what to do.

    Parameters
    ----------
    message : str
        What went wrong, naming the URL, and what to do about it.
    url : str, optional
        The archive's URL, when one was built.
    saved : int
        Alerts saved (complete) in the destination before the failure.
    """

    def __init__(self, message: str, *, url: str | None = None, saved: int = 0) -> None:
        super().__init__(message)
        self.url = url
        self.saved = saved


@dataclass
class FetchSummary:
    """What one fetch of a nightly archive did.

    Attributes
    ----------
    night : str
        The night, YYYYMMDD.
    url : str
        The archive's URL.
    dest : Path
        The folder the alerts are in.
    files : list of Path
        Every alert file of this fetch, in archive order: written now or already there.
    bytes_written : int
        Bytes written to disk by this fetch (files already there count nothing).
    bytes_downloaded : int
        Compressed bytes read from the connection.
    complete : bool
        Whether the whole archive was read, to its checked end.
    already_present : int
        Alert files that were already there with the right size, so not rewritten.
    """

    night: str
    url: str
    dest: Path
    files: list[Path] = field(default_factory=list)
    bytes_written: int = 0
    bytes_downloaded: int = 0
    complete: bool = False
    already_present: int = 0

    @property
    def alerts(self) -> int:
        """Number of alerts fetched (``len(files)``)."""
        return len(self.files)


def check_night(night: str) -> str:
    """Check that ``night`` is a real date written YYYYMMDD.

    Parameters
    ----------
    night : str
        The night, e.g. ``"20231018"``.

    Returns
    -------
    str
        ``night`` unchanged.

    Raises
    ------
    ArchiveError
        If it is not eight digits or not a date of the calendar.
    """
    # isascii: str.isdigit also accepts digits such as "²" that int() and URLs do not.
    if len(night) != 8 or not (night.isascii() and night.isdigit()):
        raise ArchiveError(
            f"the night must be a date written YYYYMMDD, e.g. 20231018, not {night!r}."
        )
    try:
        dt.date(int(night[:4]), int(night[4:6]), int(night[6:]))
    except ValueError as exc:
        raise ArchiveError(
            f"night {night!r} is not a real date ({exc}); give YYYYMMDD, e.g. 20231018."
        ) from None
    return night


def ztf_archive_url(base_url: str, night: str) -> str:
    """The URL of one night's public archive: ``{base_url}/ztf_public_{night}.tar.gz``."""
    return f"{base_url.rstrip('/')}/ztf_public_{night}.tar.gz"


def fetch_ztf_night(
    night: str,
    dest: Path,
    *,
    base_url: str,
    max_alerts: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    timeout: float = 60,
) -> FetchSummary:
    """Stream the first alerts of a ZTF nightly archive into a folder.

    The archive is read as it downloads; only regular ``.avro`` members are
    kept, each written as ``dest/<file name>`` (member folders are dropped, so
    no member path can lead outside ``dest``). After ``max_alerts`` alerts the
    connection is closed and the rest of the night is never downloaded.

    Each file is written to a temporary name and renamed, so a file with an
    alert's name is always complete. A file already there with the member's
    size is not rewritten but counts, so running again is cheap on disk and
    gives the same files.

    Parameters
    ----------
    night : str
        The night, YYYYMMDD.
    dest : Path
        Folder to write into; created when the archive answers.
    base_url : str
        Base URL of the archives, e.g. ``https://ztf.uw.edu/alerts/public``.
    max_alerts : int, optional
        Keep this many alerts and stop; ``None`` reads the whole night.
    on_progress : callable, optional
        Called as ``on_progress(alerts_saved, bytes_downloaded)`` after every
        alert and as the download goes on.
    timeout : float
        Seconds to wait to connect and for each read.

    Returns
    -------
    FetchSummary
        The files and counts. A night without alerts (some archives are empty
        tarballs of a few bytes) gives ``alerts == 0``, not an error.

    Raises
    ------
    ArchiveError
        If the night is not a YYYYMMDD date, the archive does not exist or
        cannot be reached, the stream is cut or corrupt (the message says how
        many alerts were saved before; they stay), or ``dest`` is not writable.
    """
    check_night(night)
    if max_alerts is not None and max_alerts < 1:
        raise ArchiveError(f"max_alerts must be at least 1 (or None for all), not {max_alerts}.")
    url = ztf_archive_url(base_url, night)
    dest = Path(dest)
    summary = FetchSummary(night=night, url=url, dest=dest)
    reported = 0

    def report(nbytes: int, *, alert: bool = False) -> None:
        nonlocal reported
        summary.bytes_downloaded = nbytes
        if on_progress is not None and (alert or nbytes - reported >= _PROGRESS_STEP):
            reported = nbytes
            on_progress(summary.alerts, nbytes)

    with contextlib.closing(_open(url, night, timeout)) as response:
        # Only now, once the archive answered, so a wrong night leaves no empty folder.
        try:
            dest.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArchiveError(
                f"cannot create the folder {dest} for {url}: {_why(exc)}; choose another folder.",
                url=url,
            ) from exc
        stream = _GunzipStream(response, report)
        try:
            summary.complete = _extract(stream, summary, max_alerts, report)
        except _StreamError as exc:
            what = (
                f"the archive at {url} ends early ({exc})"
                if exc.truncated
                else f"the download of {url} broke ({exc})"
            )
            raise _broken(what, summary) from exc
        except tarfile.TarError as exc:
            raise _broken(f"the archive at {url} is not a valid tar ({exc})", summary) from exc
        except OSError as exc:
            # Reads from the network arrive as _StreamError: an OSError here is the disk.
            raise ArchiveError(
                f"cannot write alerts into {dest}: {_why(exc)} (from {url}, "
                f"{_alerts(summary.alerts)} saved); free space or choose another folder.",
                url=url,
                saved=summary.alerts,
            ) from exc
        # Leaving the `with` closes the connection: when we stopped early the server
        # sees a reset and sends nothing more of the night.
    report(stream.compressed, alert=True)
    return summary


def _open(url: str, night: str, timeout: float) -> BinaryIO:
    """Open the archive's URL, turning every failure into an :class:`ArchiveError`."""
    mirror = f"set {ARCHIVE_URL_ENV} to a mirror"
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "alertbench"})
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 404:
            raise ArchiveError(
                f"no public ZTF archive for night {night} at {url}; "
                f"check the night in the archive's listing or {mirror} that has it.",
                url=url,
            ) from None
        raise ArchiveError(
            f"{url} answered HTTP {exc.code} {exc.reason}; try again later or {mirror}.", url=url
        ) from None
    except urllib.error.URLError as exc:
        # DNS failures, refused connections and connect timeouts all arrive here.
        reason = exc.reason if isinstance(exc.reason, BaseException) else str(exc.reason)
        raise ArchiveError(
            f"cannot reach {url}: {_why(reason, timeout)}; check the network or {mirror}.",
            url=url,
        ) from exc
    except (OSError, http.client.HTTPException) as exc:
        # A server that accepts but never answers, or hangs up before its headers.
        raise ArchiveError(
            f"cannot reach {url}: {_why(exc, timeout)}; check the network or {mirror}.", url=url
        ) from exc
    except ValueError as exc:
        # urllib's "unknown url type": the base URL has no http(s):// scheme.
        raise ArchiveError(
            f"{url} is not a URL ({exc}); set {ARCHIVE_URL_ENV} to one such as "
            "https://ztf.uw.edu/alerts/public.",
            url=url,
        ) from exc


def _extract(
    stream: _GunzipStream,
    summary: FetchSummary,
    max_alerts: int | None,
    report: Callable[..., None],
) -> bool:
    """Save the alert members of ``stream`` into ``summary.dest``; True if read to its end."""
    tar = _open_tar(stream)
    if tar is None:
        return True
    names: set[str] = set()
    with tar:
        member = tar.next()
        while member is not None:
            if max_alerts is not None and summary.alerts >= max_alerts:
                return False  # another member follows: the rest of the night stays unread
            name = _alert_name(member)
            if name is not None and name not in names:  # a repeated name would count twice
                names.add(name)
                path = summary.dest / name
                written = _save(tar, member, path)
                if written is None:
                    summary.already_present += 1
                else:
                    summary.bytes_written += written
                summary.files.append(path)
                report(stream.compressed, alert=True)
            # In stream mode tarfile keeps every member it has seen; a night has
            # hundreds of thousands, and we never look back.
            tar.members.clear()
            member = tar.next()
    # tarfile stops at the first end-of-archive block: read the padding and the
    # gzip trailer too, so a cut or corrupt end is caught rather than passing for
    # a short night.
    while stream.read(_CHUNK):
        pass
    return True


def _open_tar(stream: _GunzipStream) -> tarfile.TarFile | None:
    """Start reading the tar in ``stream``; None when the stream holds no byte at all."""
    try:
        return tarfile.open(fileobj=stream, mode="r|")
    except tarfile.ReadError:
        # tarfile calls a stream without a single byte "empty file"; a night
        # without alerts may be served as just that (an empty gzip).
        if stream.ended and stream.decompressed == 0:
            return None
        raise


def _alert_name(member: tarfile.TarInfo) -> str | None:
    """The file name to save ``member`` under, or None when it is not an alert.

    Only regular files: a link could point anywhere, a folder holds nothing.
    The name is the member path's last part, so ``../x.avro`` or ``/etc/x.avro``
    becomes ``x.avro`` inside the destination and never lands outside it.
    """
    if not member.isreg():
        return None
    name = PurePosixPath(member.name.replace("\\", "/")).name
    # Dot files are skipped: AppleDouble "._x.avro" companions are not alerts.
    if not name.endswith(ALERT_SUFFIX) or name.startswith("."):
        return None
    return name


def _save(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> int | None:
    """Write ``member`` to ``path`` atomically; bytes written, None if it was already there."""
    with contextlib.suppress(FileNotFoundError):
        if path.is_file() and path.stat().st_size == member.size:
            return None
    source = tar.extractfile(member)
    if source is None:  # pragma: no cover - only regular files get here
        return None
    # A hidden temporary name in the same folder: rename is atomic there, and
    # globs of *.avro never see a half-written alert.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with open(tmp, "wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return member.size


class _StreamError(Exception):
    """The download stopped or is not gzip; ``truncated`` when it simply ended too soon."""

    def __init__(self, why: str, *, truncated: bool = False) -> None:
        super().__init__(why)
        self.truncated = truncated


class _GunzipStream:
    """The decompressed archive as a read-only file, pulled from the response on demand.

    We decompress here rather than let tarfile do it (mode ``r|gz``): tarfile
    ignores the gzip trailer (CRC-32 and length) and takes a stream cut at a
    tar header for a clean end, so a truncated download would pass for a short
    night. zlib checks the trailer and tells a true end from a cut.
    """

    def __init__(self, raw: BinaryIO, on_read: Callable[[int], None]) -> None:
        self._raw = raw
        self._on_read = on_read
        self._unzip = zlib.decompressobj(_GZIP_WBITS)
        self._buf = bytearray()
        self._raw_done = False
        self.ended = False  # the stream ended cleanly: every gzip member had its trailer
        self.compressed = 0  # bytes read from the connection
        self.decompressed = 0

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` decompressed bytes (all the rest if negative); ``b""`` at the end."""
        while (size < 0 or len(self._buf) < size) and self._fill():
            pass
        if size < 0 or size >= len(self._buf):
            data = bytes(self._buf)
            self._buf.clear()
        else:
            data = bytes(self._buf[:size])
            del self._buf[:size]
        return data

    def _read_raw(self) -> bytes:
        if self._raw_done:
            return b""
        try:
            data = self._raw.read(_CHUNK)
        except (OSError, http.client.HTTPException) as exc:
            # Wrapped so that callers can tell the network from the disk.
            raise _StreamError(_why(exc)) from exc
        if not data:
            self._raw_done = True
            return b""
        self.compressed += len(data)
        self._on_read(self.compressed)
        return data

    def _fill(self) -> bool:
        """Decompress more into the buffer; False once the stream has ended cleanly."""
        while not self.ended:
            if self._unzip.eof:
                pending = self._unzip.unused_data or self._read_raw()
                if not pending:
                    self.ended = True
                    break
                # gzip allows members back to back (`cat a.gz b.gz`): start the next.
                self._unzip = zlib.decompressobj(_GZIP_WBITS)
            else:
                pending = self._unzip.unconsumed_tail or self._read_raw()
                if not pending:
                    if self.compressed == 0:
                        # An empty body: some mirrors serve a night without alerts so.
                        self.ended = True
                        break
                    raise _StreamError(
                        f"the gzip stream stops after {self.compressed:,} bytes", truncated=True
                    )
            try:
                # Bounded output: a tiny chunk of zeros can inflate to gigabytes.
                out = self._unzip.decompress(pending, 4 * _CHUNK)
            except zlib.error as exc:
                raise _StreamError(f"not valid gzip data: {exc}") from exc
            if out:
                self._buf += out
                self.decompressed += len(out)
                return True
        return False


def _broken(what: str, summary: FetchSummary) -> ArchiveError:
    return ArchiveError(
        f"{what}; {_alerts(summary.alerts)} saved before it broke, complete, in "
        f"{summary.dest}. Run again to retry (saved alerts are not rewritten) or set "
        f"{ARCHIVE_URL_ENV} to a mirror.",
        url=summary.url,
        saved=summary.alerts,
    )


def _alerts(n: int) -> str:
    return f"{n} alert" if n == 1 else f"{n} alerts"


def _why(reason: BaseException | str, timeout: float | None = None) -> str:
    """A short reason for an OS or network error, without errno noise."""
    if isinstance(reason, str):
        return reason
    if isinstance(reason, TimeoutError):
        return f"timed out after {timeout:g} s" if timeout is not None else "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__
