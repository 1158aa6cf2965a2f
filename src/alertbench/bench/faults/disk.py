"""A small real filesystem under a folder, to fill and free: the disk-full faults' disk.

The folder is mounted from an ext4 image (a sparse file beside it, ``mount
-o loop``) made with no blocks reserved for root, so that a process running
as root finds it as full as any other. Filling allocates every free block to
one file (``fallocate``, then small writes for the last blocks), which costs
the image metadata, not gigabytes of writes; freeing deletes that file.
Mounting needs root and ``mkfs.ext4``: :func:`why_not` says what is missing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alertbench.errors import AlertbenchError

FILLER = ".alertbench-disk-full"


class DiskError(AlertbenchError):
    """A filesystem for a disk-full fault could not be made, filled or removed."""


def why_not() -> str | None:
    """Why a loop-mounted filesystem cannot be made here, or None if it can."""
    if os.geteuid() != 0:
        return "it mounts a filesystem image (mount -o loop), which needs root"
    for tool in ("mkfs.ext4", "mount", "umount"):
        if shutil.which(tool) is None:
            return f"it needs {tool} (Debian: apt-get install e2fsprogs mount)"
    return None


def _run(*argv: str) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True)
    if done.returncode != 0:
        raise DiskError(f"{' '.join(argv)} failed: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def _mounted(path: Path) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == target for line in mounts)


@dataclass
class LoopDisk:
    """An ext4 filesystem of ``size_mb`` from ``image``, mounted on ``mount``.

    Attributes
    ----------
    mount : Path
        The folder it is mounted on (made if absent; must be empty).
    image : Path
        The image file (sparse: it takes only what is written to it).
    size_mb : int
        The filesystem's size.
    """

    mount: Path
    image: Path
    size_mb: int

    def attach(self) -> None:
        """Make the filesystem and mount it.

        Raises
        ------
        DiskError
            Naming the command that failed and its message.
        """
        self.mount.mkdir(parents=True, exist_ok=True)
        if any(self.mount.iterdir()):
            raise DiskError(
                f"{self.mount} is not empty: a filesystem is mounted only on an empty one"
            )
        with open(self.image, "wb") as f:
            f.truncate(self.size_mb * 2**20)
        _run("mkfs.ext4", "-q", "-F", "-m", "0", "-L", "alertbench", str(self.image))
        _run("mount", "-o", "loop", str(self.image), str(self.mount))

    def usage(self) -> dict[str, int]:
        """Its ``total`` and ``free`` bytes now."""
        st = os.statvfs(self.mount)
        return {"total": st.f_blocks * st.f_frsize, "free": st.f_bavail * st.f_frsize}

    def fill(self) -> dict[str, Any]:
        """Take every free block; returns the bytes taken and what is left free."""
        path = self.mount / FILLER
        taken = 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            # The largest allocation that fits, smaller after each refusal, then the last
            # blocks one by one.
            want = self.usage()["free"]
            while want >= 1 << 20:
                try:
                    os.posix_fallocate(fd, taken, want)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    want -= max(want // 16, 1 << 20)
                    continue
                taken += want
                want = self.usage()["free"]
            block = b"\0" * 4096
            with contextlib.suppress(OSError):
                while True:
                    taken += os.write(fd, block)
        finally:
            os.close(fd)
        return {"filled_bytes": taken, "free_bytes": self.usage()["free"]}

    def free(self) -> dict[str, Any]:
        """Delete what :meth:`fill` took; returns the bytes free after."""
        (self.mount / FILLER).unlink(missing_ok=True)
        return {"free_bytes": self.usage()["free"]}

    def detach(self, *, keep: bool = False) -> None:
        """Unmount it and delete the image; with ``keep``, first copy its content out.

        The content stays in the folder it was mounted on, as if no
        filesystem had been there (the filler excepted).
        """
        if not _mounted(self.mount):
            self.image.unlink(missing_ok=True)
            return
        (self.mount / FILLER).unlink(missing_ok=True)
        held = None
        if keep:
            held = Path(tempfile.mkdtemp(prefix=".disk-", dir=self.mount.parent))
            shutil.copytree(
                self.mount,
                held,
                dirs_exist_ok=True,
                symlinks=True,
                ignore=shutil.ignore_patterns("lost+found"),
            )
        # A process that has just exited may hold a file a moment longer: "target is busy".
        for attempt in range(10):
            try:
                _run("umount", str(self.mount))
                break
            except DiskError:
                if attempt == 9:
                    raise
                time.sleep(1)
        self.image.unlink(missing_ok=True)
        if held is not None:
            shutil.copytree(held, self.mount, dirs_exist_ok=True, symlinks=True)
            shutil.rmtree(held, ignore_errors=True)

    def to_json(self) -> dict[str, Any]:
        """What the bench's state file records of it (to unmount it after a crash)."""
        return {"mount": str(self.mount), "image": str(self.image), "size_mb": self.size_mb}
