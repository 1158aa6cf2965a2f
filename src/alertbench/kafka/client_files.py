"""A user's client files, one per kind of client: librdkafka's, Java's, kafka-python's.

Each kind of Kafka client takes its security in its own names:

- ``librdkafka``: ``key=value`` properties in librdkafka's names, read as
  they are (confluent-kafka, kcat ``-F``, Fink's client; alertbench's own
  clients), ``NAME.properties``;
- ``java``: a ``java.util.Properties`` file in the Java client's names, with
  the credentials in a JAAS line and the CA as a PEM trust store, which
  Kafka's tools (``--consumer.config``, ``--command-config``) and Spark
  (``kafka.``-prefixed options) take as it is, ``NAME.java.properties``;
- ``kafka-python``: the keyword arguments of kafka-python's
  ``KafkaConsumer``/``KafkaProducer`` as JSON, ``NAME.kafka-python.json``.
  aiokafka takes the same ones, except that its TLS trust is an
  ``ssl_context`` (``aiokafka.helpers.create_ssl_context(cafile=...)``) in
  place of ``ssl_cafile`` and ``ssl_check_hostname``.

Every file holds a password: each is written mode 0600.
"""

from __future__ import annotations

import json
from pathlib import Path

import javaproperties

from alertbench.errors import ConfigError
from alertbench.kafka.security import java_properties, uses_sasl, uses_tls, write_secret

#: Each format, and the suffix its file takes after the user's name.
FORMATS: dict[str, str] = {
    "librdkafka": ".properties",
    "java": ".java.properties",
    "kafka-python": ".kafka-python.json",
}


def check_format(name: str) -> str:
    """``name`` if it is a format alertbench writes, else a ConfigError listing them."""
    if name not in FORMATS:
        raise ConfigError(f"unknown client file format {name!r}; use one of {', '.join(FORMATS)}.")
    return name


def sibling(librdkafka_file: Path, fmt: str) -> Path:
    """Where the ``fmt`` file goes beside a user's librdkafka file (``bob.properties``)."""
    stem = librdkafka_file.name.removesuffix(".properties")
    return librdkafka_file.with_name(stem + FORMATS[check_format(fmt)])


def java_text(props: dict[str, str], header: str = "") -> str:
    r"""A Java client's properties file for librdkafka ``props`` (with ``bootstrap.servers``).

    Written with ``javaproperties``, as ``java.util.Properties.store`` would:
    the JAAS line's ``\"`` and ``\\`` escapes are escaped again for the file,
    and characters outside Latin-1 become ``\uXXXX`` (Kafka's tools read the
    file as ISO-8859-1).
    """
    java = {"bootstrap.servers": props["bootstrap.servers"], **java_properties(props)}
    body = javaproperties.dumps(java, timestamp=False, sort_keys=False)
    return "".join(f"# {line}\n" for line in header.splitlines()) + body


def kafka_python_kwargs(props: dict[str, str]) -> dict[str, object]:
    """kafka-python's keyword arguments for librdkafka ``props`` (with ``bootstrap.servers``)."""
    protocol = props.get("security.protocol", "plaintext").lower()
    kwargs: dict[str, object] = {
        "bootstrap_servers": props["bootstrap.servers"].split(","),
        "security_protocol": protocol.upper(),
    }
    if uses_sasl(protocol):
        kwargs["sasl_mechanism"] = props.get("sasl.mechanism", "SCRAM-SHA-512").upper()
        kwargs["sasl_plain_username"] = props.get("sasl.username", "")
        kwargs["sasl_plain_password"] = props.get("sasl.password", "")
    if uses_tls(protocol):
        if "ssl.ca.location" in props:
            kwargs["ssl_cafile"] = props["ssl.ca.location"]
        if "ssl.certificate.location" in props:
            kwargs["ssl_certfile"] = props["ssl.certificate.location"]
            kwargs["ssl_keyfile"] = props.get("ssl.key.location", props["ssl.certificate.location"])
        kwargs["ssl_check_hostname"] = (
            props.get("ssl.endpoint.identification.algorithm", "https") != "none"
        )
    return kwargs


def write_formats(
    librdkafka_file: Path, props: dict[str, str], formats: list[str], header: str = ""
) -> list[Path]:
    """Write the other formats of a user's client file beside it (mode 0600).

    Parameters
    ----------
    librdkafka_file : Path
        The user's librdkafka file (already written); the others go beside it.
    props : dict
        Its properties, ``bootstrap.servers`` included.
    formats : list of str
        Formats asked for; ``librdkafka`` is the file itself and is skipped.
    header : str
        A comment for the Java file.

    Returns
    -------
    list of Path
        The files written.
    """
    written = []
    for fmt in dict.fromkeys(check_format(f) for f in formats):
        if fmt == "librdkafka":
            continue
        path = sibling(librdkafka_file, fmt)
        if fmt == "java":
            text = java_text(props, header)
        else:
            text = json.dumps(kafka_python_kwargs(props), indent=2) + "\n"
        write_secret(path, text)
        written.append(path)
    return written
