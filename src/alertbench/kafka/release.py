"""What differs between Kafka release lines: modes, logging, artifacts."""

from __future__ import annotations

import re
from dataclasses import dataclass

from alertbench.errors import ConfigError

KNOWN_VERSIONS = ("4.3.1", "3.9.2")
_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


@dataclass(frozen=True)
class KafkaRelease:
    """One Apache Kafka version and what it implies.

    Attributes
    ----------
    version : str
        ``MAJOR.MINOR.PATCH``.
    major, minor : int
        Parsed from ``version``.
    """

    version: str
    major: int
    minor: int

    @property
    def supports_kraft(self) -> bool:
        """KRaft is production-ready from Kafka 3.3."""
        return (self.major, self.minor) >= (3, 3)

    @property
    def supports_zookeeper(self) -> bool:
        """Kafka 4.0 removed ZooKeeper mode."""
        return self.major < 4

    @property
    def uses_log4j2(self) -> bool:
        """Kafka 4 logs through log4j2; 3.x through reload4j (log4j 1 API)."""
        return self.major >= 4

    @property
    def has_share_groups(self) -> bool:
        """Share-group internal topics (KIP-932) exist from Kafka 4.0."""
        return self.major >= 4

    def artifacts(self) -> list[str]:
        """Maven coordinates whose runtime closure runs brokers, controllers and tools.

        ``kafka-tools`` brings Kafka's own performance tools
        (``ProducerPerformance``) used by the benchmarks.
        """
        return [
            f"org.apache.kafka:kafka_2.13:{self.version}",
            f"org.apache.kafka:kafka-tools:{self.version}",
        ]

    def check_mode(self, mode: str) -> None:
        """Fail clearly when this release cannot run in ``mode``.

        Raises
        ------
        ConfigError
            If ``mode`` is ``zookeeper`` on Kafka >= 4 or ``kraft`` before 3.3.
        """
        if mode == "zookeeper" and not self.supports_zookeeper:
            raise ConfigError(
                f"Kafka {self.version} has no ZooKeeper mode (removed in 4.0). Use "
                "--mode kraft, or a 3.x release such as --version 3.9.2 for ZooKeeper mode."
            )
        if mode == "kraft" and not self.supports_kraft:
            raise ConfigError(
                f"Kafka {self.version} predates production KRaft (3.3). Use --mode zookeeper "
                "or a newer version."
            )


def parse_release(version: str) -> KafkaRelease:
    """Validate a Kafka version string.

    Parameters
    ----------
    version : str
        E.g. ``4.3.1``.

    Returns
    -------
    KafkaRelease

    Raises
    ------
    ConfigError
        If ``version`` is not ``MAJOR.MINOR.PATCH``.
    """
    match = _VERSION_RE.match(version.strip())
    if not match:
        raise ConfigError(
            f"unknown Kafka version {version!r}: versions look like 4.3.1 "
            f"(tested: {', '.join(KNOWN_VERSIONS)})."
        )
    return KafkaRelease(version=version.strip(), major=int(match[1]), minor=int(match[2]))
