"""Prepare remote hosts for Kafka: check their Java, install the fetched jars once.

Hosts need no internet: the jars resolved into this machine's cache are
copied to each host, into ``<install_dir>/kafka-<version>/libs``, with a
manifest of names and sizes so that a second run copies nothing.
"""

from __future__ import annotations

from pathlib import Path

from alertbench.errors import ClusterError
from alertbench.java import JavaError, check_java_version, parse_java_version
from alertbench.kafka.fetch import KafkaInstall
from alertbench.kafka.inventory import Host
from alertbench.procs import Transport
from alertbench.ssh import SSHTarget

MANIFEST = "alertbench-manifest.txt"


def ssh_target(host: Host) -> SSHTarget:
    """How to reach an inventory host over SSH (user root unless the inventory says)."""
    return SSHTarget(
        host=host.name,
        address=host.address,
        user=host.user or "root",
        port=host.ssh_port,
        key_file=host.ssh_key.expanduser() if host.ssh_key else None,
        sudo=host.sudo,
        trust_new=host.trust_new_host_keys,
    )


def java_of(host: Host) -> str:
    """The java command to run on ``host``."""
    return str(host.java_home / "bin" / "java") if host.java_home else "java"


def check_java(t: Transport, java: str = "java") -> tuple[str, int]:
    """The version of ``java`` on the host behind ``t``.

    Raises
    ------
    ClusterError
        Naming the host, when Java is missing or older than 17.
    """
    done = t.run([java, "-version"], timeout=60)
    if done.returncode != 0:
        raise ClusterError(
            f"host {t.host}: `{java} -version` failed ({done.stderr.strip() or done.stdout}). "
            "Install a JDK >= 17 there, or set the host's java_home in the inventory."
        )
    try:
        version, major = parse_java_version(done.stderr + done.stdout)
        check_java_version(version, major, Path(java))
    except JavaError as exc:
        raise ClusterError(f"host {t.host}: {exc}") from None
    return version, major


def _manifest(lib_dir: Path) -> str:
    jars = sorted(p for p in lib_dir.iterdir() if p.is_file())
    return "".join(f"{p.name} {p.stat().st_size}\n" for p in jars)


def install_kafka(t: Transport, install: KafkaInstall, install_dir: Path) -> tuple[Path, int]:
    """Copy ``install``'s jars to the host unless the same ones are there already.

    Returns
    -------
    tuple of (Path, int)
        The host's lib folder (the classpath is ``lib/*``) and the files copied.
    """
    lib = Path(install_dir) / f"kafka-{install.release.version}" / "libs"
    wanted = _manifest(install.lib_dir)
    if t.tail(lib / MANIFEST, lines=100_000).strip() == wanted.strip():
        return lib, 0
    # A changed or partial install is replaced whole: stale jars on a classpath
    # of `lib/*` would load beside the new ones.
    t.remove_tree(lib)
    t.make_dirs(lib)
    copied = 0
    for jar in sorted(p for p in install.lib_dir.iterdir() if p.is_file()):
        t.copy_file(jar, lib / jar.name)
        copied += 1
    t.write_text(lib / MANIFEST, wanted)  # last: it marks the install complete
    return lib, copied
