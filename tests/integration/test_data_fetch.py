"""`data fetch ztf`: real ZTF alerts streamed out of nightly archives over real HTTP.

A local HTTP server serves tarballs built like the public ZTF archives (one
``.avro`` per alert, under a folder) from real alerts, and counts the bytes it
sends, so the tests can show that fetching a few alerts leaves most of the
night on the server.
"""

from __future__ import annotations

import functools
import gzip
import http.server
import io
import re
import socket
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from alertbench.alerts.archive import ArchiveError, fetch_ztf_night
from alertbench.config import Flags
from alertbench.errors import AlertbenchError
from alertbench.simulator.data_cli import data_app

NIGHT = "20231018"  # 200 real alerts, a folder entry and a README among them
TRAVERSAL = "20231019"  # members that try to leave the destination
TRUNCATED = "20231020"  # the first half of NIGHT's bytes
EMPTY = "20231021"  # an empty tarball of a few bytes, like nights without alerts
NOT_GZIP = "20231023"  # an HTML page where the archive should be
MISSING = "20231022"  # no archive: 404
N_ALERTS = 200

EVIL_ABSOLUTE = Path(f"/tmp/alertbench-evil-{uuid.uuid4().hex}.avro")


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the archive folder and records how many body bytes each GET sent."""

    def __init__(self, *args, sent: list[tuple[str, int]], **kwargs) -> None:
        self.sent_log = sent
        super().__init__(*args, **kwargs)

    def setup(self) -> None:
        # A small send buffer: on loopback the kernel would otherwise accept
        # megabytes the client never reads, and "sent" would not mean "downloaded".
        self.request.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
        super().setup()

    def copyfile(self, source, outputfile) -> None:
        sent = 0
        try:
            while chunk := source.read(1 << 16):
                outputfile.write(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up: that is the point of stopping early
        finally:
            self.sent_log.append((self.path, sent))

    def log_message(self, format, *args) -> None:
        pass


@dataclass
class ArchiveServer:
    url: str
    root: Path
    sent: list[tuple[str, int]] = field(default_factory=list)

    def archive(self, night: str) -> Path:
        return self.root / f"ztf_public_{night}.tar.gz"

    def body_sent(self, timeout: float = 10) -> int:
        """Bytes sent for the one GET since ``sent`` was cleared, once the handler is done."""
        deadline = time.monotonic() + timeout
        while not self.sent and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.sent) == 1, self.sent
        return self.sent[0][1]


def _add(tar: tarfile.TarFile, name: str, data: bytes, **attrs) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


def _build_archives(root: Path, alerts: list[Path]) -> None:
    folder = f"ztf_public_{NIGHT}"
    with tarfile.open(root / f"ztf_public_{NIGHT}.tar.gz", "w:gz") as tar:
        _add(tar, folder, b"", type=tarfile.DIRTYPE, mode=0o755)
        for i, path in enumerate(alerts):
            if i == N_ALERTS // 2:
                _add(tar, f"{folder}/README.txt", b"not an alert\n" * 100)
            tar.add(path, arcname=f"{folder}/{path.name}")
    whole = (root / f"ztf_public_{NIGHT}.tar.gz").read_bytes()
    (root / f"ztf_public_{TRUNCATED}.tar.gz").write_bytes(whole[: len(whole) // 2])

    with tarfile.open(root / f"ztf_public_{TRAVERSAL}.tar.gz", "w:gz") as tar:
        _add(tar, "../evil.avro", alerts[0].read_bytes())
        _add(tar, "night/../../evil2.avro", alerts[1].read_bytes())
        _add(tar, str(EVIL_ABSOLUTE), alerts[2].read_bytes())
        _add(tar, "night/link.avro", b"", type=tarfile.SYMTYPE, linkname="../../outside.avro")
        _add(tar, "night/good.avro", alerts[3].read_bytes())

    with tarfile.open(root / f"ztf_public_{EMPTY}.tar.gz", "w:gz"):
        pass
    (root / f"ztf_public_{NOT_GZIP}.tar.gz").write_bytes(
        b"<html><body>Service temporarily unavailable</body></html>\n"
    )


@pytest.fixture(scope="module")
def sources(alert_files: list[Path]) -> list[Path]:
    """The first 200 real alerts: the archive's members, in order."""
    if len(alert_files) < N_ALERTS:
        pytest.skip(f"needs {N_ALERTS} alerts in ALERTBENCH_ALERTS, found {len(alert_files)}")
    return alert_files[:N_ALERTS]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, sources: list[Path]
) -> Iterator[ArchiveServer]:
    """A real HTTP server of ZTF-like archives on a free port, shut down afterwards."""
    root = tmp_path_factory.mktemp("archives")
    _build_archives(root, sources)
    sent: list[tuple[str, int]] = []
    handler = functools.partial(CountingHandler, sent=sent, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield ArchiveServer(f"http://127.0.0.1:{httpd.server_address[1]}", root, sent)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
        EVIL_ABSOLUTE.unlink(missing_ok=True)


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/alerts"


def _listing(folder: Path) -> list[str]:
    """Every entry of ``folder``, hidden ones too (a leftover .part would show)."""
    return sorted(p.name for p in folder.iterdir())


def test_first_25_of_200_downloads_only_a_part(server, sources, tmp_path):
    dest = tmp_path / "out"
    calls: list[tuple[int, int]] = []
    server.sent.clear()
    summary = fetch_ztf_night(
        NIGHT,
        dest,
        base_url=server.url,
        max_alerts=25,
        on_progress=lambda n, b: calls.append((n, b)),
    )
    first = sources[:25]
    assert _listing(dest) == sorted(p.name for p in first)
    assert summary.files == [dest / p.name for p in first]
    for src in first:
        assert (dest / src.name).read_bytes() == src.read_bytes()
    assert summary.night == NIGHT
    assert summary.url == f"{server.url}/ztf_public_{NIGHT}.tar.gz"
    assert summary.alerts == 25
    assert summary.bytes_written == sum(p.stat().st_size for p in first)
    assert summary.already_present == 0
    assert summary.complete is False

    size = server.archive(NIGHT).stat().st_size
    assert 0 < summary.bytes_downloaded < 0.4 * size
    # The server's own count: it stopped sending when we hung up.
    assert server.body_sent() < 0.4 * size

    assert {n for n, _ in calls} >= set(range(1, 26))
    assert calls == sorted(calls)
    assert calls[-1] == (25, summary.bytes_downloaded)


def test_whole_night_skips_what_is_not_an_alert(server, sources, tmp_path):
    dest = tmp_path / "out"
    summary = fetch_ztf_night(NIGHT, dest, base_url=server.url, max_alerts=None)
    assert summary.alerts == N_ALERTS
    assert summary.complete is True
    assert _listing(dest) == sorted(p.name for p in sources)  # no README.txt, no folder
    assert summary.bytes_downloaded == server.archive(NIGHT).stat().st_size
    assert summary.bytes_written == sum(p.stat().st_size for p in sources)
    assert (dest / sources[-1].name).read_bytes() == sources[-1].read_bytes()


def test_a_limit_equal_to_the_night_reads_it_whole(server, tmp_path):
    summary = fetch_ztf_night(NIGHT, tmp_path, base_url=server.url, max_alerts=N_ALERTS)
    assert summary.alerts == N_ALERTS
    assert summary.complete is True  # nothing followed the 200th alert


def test_running_again_rewrites_nothing(server, sources, tmp_path):
    dest = tmp_path / "out"
    fetch_ztf_night(NIGHT, dest, base_url=server.url, max_alerts=25)
    before = {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in dest.iterdir()}
    time.sleep(0.05)  # a rewrite would show in mtime

    again = fetch_ztf_night(NIGHT, dest, base_url=server.url, max_alerts=25)
    assert again.alerts == 25
    assert again.already_present == 25
    assert again.bytes_written == 0
    assert again.files == [dest / p.name for p in sources[:25]]
    assert {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in dest.iterdir()} == before

    more = fetch_ztf_night(NIGHT, dest, base_url=server.url, max_alerts=30)
    assert (more.alerts, more.already_present) == (30, 25)
    assert more.bytes_written == sum(p.stat().st_size for p in sources[25:30])
    for name, stamp in before.items():
        path = dest / name
        assert (path.stat().st_mtime_ns, path.stat().st_ino) == stamp

    # A file of the wrong size (an older, different copy) is replaced.
    damaged = dest / sources[3].name
    damaged.write_bytes(b"not this alert")
    fixed = fetch_ztf_night(NIGHT, dest, base_url=server.url, max_alerts=30)
    assert fixed.already_present == 29
    assert damaged.read_bytes() == sources[3].read_bytes()


def test_missing_night_names_the_url(server, tmp_path):
    dest = tmp_path / "out"
    url = f"{server.url}/ztf_public_{MISSING}.tar.gz"
    expected = re.escape(f"no public ZTF archive for night {MISSING} at {url}")
    with pytest.raises(ArchiveError, match=expected):
        fetch_ztf_night(MISSING, dest, base_url=server.url, max_alerts=5)
    assert not dest.exists()  # nothing to show for a night that is not there


@pytest.mark.parametrize(
    ("night", "complaint"),
    [
        ("2023-10-18", "YYYYMMDD"),
        ("20231345", "not a real date"),
        ("20230229", "not a real date"),
        ("2023101", "YYYYMMDD"),
        ("../../x", "YYYYMMDD"),
    ],
)
def test_bad_night_is_refused_before_any_request(server, tmp_path, night, complaint):
    server.sent.clear()
    with pytest.raises(ArchiveError, match=complaint):
        fetch_ztf_night(night, tmp_path / "out", base_url=server.url, max_alerts=5)
    assert not (tmp_path / "out").exists()
    assert server.sent == []


def test_leap_day_is_a_night(server, tmp_path):
    with pytest.raises(ArchiveError, match="no public ZTF archive for night 20240229"):
        fetch_ztf_night("20240229", tmp_path, base_url=server.url, max_alerts=5)


def test_unreachable_server_says_so(tmp_path):
    base = _closed_port_url()
    with pytest.raises(ArchiveError) as info:
        fetch_ztf_night(NIGHT, tmp_path / "out", base_url=base, max_alerts=5, timeout=5)
    msg = str(info.value)
    assert f"cannot reach {base}/ztf_public_{NIGHT}.tar.gz" in msg
    assert "ALERTBENCH_ZTF_ARCHIVE_URL" in msg
    assert not (tmp_path / "out").exists()


def test_silent_server_times_out(tmp_path):
    # Listens (the kernel completes the handshake) but never answers.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        base = f"http://127.0.0.1:{s.getsockname()[1]}"
        with pytest.raises(ArchiveError, match=r"cannot reach .*: timed out after 0\.5 s"):
            fetch_ztf_night(NIGHT, tmp_path, base_url=base, max_alerts=5, timeout=0.5)


def test_base_url_without_scheme_is_named(tmp_path):
    with pytest.raises(
        ArchiveError, match=re.escape("ztf.uw.edu/alerts/ztf_public_20231018.tar.gz is not a")
    ):
        fetch_ztf_night(NIGHT, tmp_path, base_url="ztf.uw.edu/alerts", max_alerts=5)


def test_truncated_archive_keeps_complete_alerts(server, sources, tmp_path):
    dest = tmp_path / "out"
    url = f"{server.url}/ztf_public_{TRUNCATED}.tar.gz"
    with pytest.raises(ArchiveError) as info:
        fetch_ztf_night(TRUNCATED, dest, base_url=server.url, max_alerts=None)
    saved = info.value.saved
    assert 0 < saved < N_ALERTS
    msg = str(info.value)
    assert f"the archive at {url} ends early" in msg
    assert f"{saved} alerts saved before it broke" in msg
    # Exactly the alerts before the cut, each whole; no half-written temporary file.
    assert _listing(dest) == sorted(p.name for p in sources[:saved])
    for src in sources[:saved]:
        assert (dest / src.name).read_bytes() == src.read_bytes()


def test_what_is_not_gzip_is_called_corrupt(server, tmp_path):
    with pytest.raises(ArchiveError, match=r"not valid gzip data.*0 alerts saved") as info:
        fetch_ztf_night(NOT_GZIP, tmp_path / "out", base_url=server.url)
    assert info.value.url == f"{server.url}/ztf_public_{NOT_GZIP}.tar.gz"
    assert _listing(tmp_path / "out") == []


def test_empty_night_has_no_alerts(server, tmp_path):
    assert server.archive(EMPTY).stat().st_size < 100
    summary = fetch_ztf_night(EMPTY, tmp_path / "out", base_url=server.url, max_alerts=5)
    assert summary.alerts == 0
    assert summary.complete is True
    assert _listing(tmp_path / "out") == []


def test_member_paths_never_leave_the_destination(server, sources, tmp_path):
    dest = tmp_path / "a" / "b" / "dest"
    summary = fetch_ztf_night(TRAVERSAL, dest, base_url=server.url)
    # Flattened to their file names inside dest; the symlink is not a regular file.
    assert _listing(dest) == sorted(["evil.avro", "evil2.avro", EVIL_ABSOLUTE.name, "good.avro"])
    assert summary.alerts == 4
    assert (dest / "evil.avro").read_bytes() == sources[0].read_bytes()
    assert (dest / EVIL_ABSOLUTE.name).read_bytes() == sources[2].read_bytes()
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and dest not in p.parents]
    assert outside == []
    assert not EVIL_ABSOLUTE.exists()
    assert not (tmp_path / "outside.avro").exists()


def _cli_app(**flags) -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = Flags(**flags)

    app.add_typer(data_app, name="data")
    return app


def test_cli_fetches_into_the_data_dir(server, sources, tmp_path, monkeypatch):
    monkeypatch.setenv("ALERTBENCH_ZTF_ARCHIVE_URL", server.url)
    monkeypatch.setenv("ALERTBENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "300")
    result = CliRunner().invoke(
        _cli_app(), ["data", "fetch", "ztf", "--night", NIGHT, "--max-alerts", "10"]
    )
    assert result.exit_code == 0, result.output
    dest = tmp_path / "data" / "ztf" / NIGHT
    assert _listing(dest) == sorted(p.name for p in sources[:10])
    assert "10 alerts" in result.output
    assert "stopped early" in result.output


def test_cli_flags_out_and_a_whole_night(server, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    app = _cli_app(ztf_archive_url=server.url, data_dir=tmp_path / "unused")
    out = tmp_path / "here"
    result = CliRunner().invoke(app, ["data", "fetch", "ztf", "--night", NIGHT, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(_listing(out)) == N_ALERTS
    assert "the whole night was read" in result.output
    assert not (tmp_path / "unused").exists()

    empty = CliRunner().invoke(app, ["data", "fetch", "ztf", "--night", EMPTY, "-o", str(out)])
    assert empty.exit_code == 0, empty.output
    assert f"night {EMPTY} had no alerts" in empty.output


def test_cli_error_is_an_alertbench_error(server, tmp_path):
    app = _cli_app(ztf_archive_url=server.url, data_dir=tmp_path)
    result = CliRunner().invoke(app, ["data", "fetch", "ztf", "--night", MISSING])
    assert result.exit_code != 0
    assert isinstance(result.exception, AlertbenchError)
    assert f"{server.url}/ztf_public_{MISSING}.tar.gz" in str(result.exception)

    usage = CliRunner().invoke(app, ["data", "fetch", "ztf", "--night", NIGHT, "--max-alerts", "0"])
    assert usage.exit_code == 2  # click refuses it before anything is fetched


def test_empty_gzip_stream_is_an_empty_night(server, tmp_path):
    # Some mirrors may serve a night without alerts as an empty gzip stream.
    (server.root / "ztf_public_20231024.tar.gz").write_bytes(gzip.compress(b""))
    summary = fetch_ztf_night("20231024", tmp_path, base_url=server.url)
    assert (summary.alerts, summary.complete) == (0, True)
