"""A Java client's properties file (the one Kafka's tools take), for alertbench's clients.

Kafka's own tools (``kafka-console-consumer --consumer.config``,
``--command-config``) read a ``java.util.Properties`` file in the Java
client's names: the credentials in a JAAS line (``sasl.jaas.config``), the
trusted CA in a trust store. alertbench's clients are librdkafka's
(confluent-kafka), so such a file is read with a library that knows the
format (``javaproperties``: escapes, ``:`` separators, continued lines) and
translated to librdkafka's names. A user can then give alertbench the file
they already use with Kafka's tools.
"""

from __future__ import annotations

import re

import javaproperties

from alertbench.errors import ConfigError

#: Names only the Java client has (librdkafka has none of them): a file holding one
#: is a Java client's.
JAVA_ONLY = (
    "sasl.jaas.config",
    "ssl.truststore.location",
    "ssl.truststore.type",
    "ssl.truststore.password",
    "ssl.truststore.certificates",
    "ssl.keystore.type",
)

# One option of a JAAS line: NAME=VALUE, the value quoted (with \\ and \" inside, as
# Kafka's parser, a StreamTokenizer, reads them) or bare.
_OPTION = re.compile(r'([A-Za-z_][\w.]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s;"]+)')


def is_java(text: str) -> bool:
    """Whether a properties file's text is a Java client's (it names a Java-only property)."""
    try:
        keys = javaproperties.loads(text)
    except ValueError:  # a bad \u escape: not a file Java could read either
        return False
    return any(key in keys for key in JAVA_ONLY)


def jaas_options(line: str) -> dict[str, str]:
    """The options of a ``sasl.jaas.config`` line, unquoted (``username``, ``password``...)."""
    found = {}
    for name, value in _OPTION.findall(line):
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        found[name] = value
    return found


def from_java(text: str, where: str) -> dict[str, str]:
    """A Java client's properties translated to librdkafka's.

    Parameters
    ----------
    text : str
        The file's text.
    where : str
        The file, to name in errors.

    Returns
    -------
    dict of str to str
        librdkafka properties; names both clients share (``bootstrap.servers``,
        ``security.protocol``, ``sasl.mechanism``, ``client.id``...) pass as
        they are.

    Raises
    ------
    ConfigError
        For what librdkafka cannot take: a JKS store, or a trust store other
        than PEM (a key store may be PEM or PKCS12), a JAAS line without a
        user name and password, a login module other than SCRAM's or PLAIN's;
        the message says what to do.
    """
    java = javaproperties.loads(text)
    keystore = ("ssl.keystore.location", "ssl.keystore.password")
    out = {k: v for k, v in java.items() if k not in JAVA_ONLY + keystore}
    if "sasl.jaas.config" in java:
        line = java["sasl.jaas.config"]
        if "ScramLoginModule" not in line and "PlainLoginModule" not in line:
            raise ConfigError(
                f"{where}: sasl.jaas.config uses {line.split()[0]!r}; alertbench's clients log "
                "in with SCRAM or PLAIN (ScramLoginModule, PlainLoginModule)."
            )
        options = jaas_options(line)
        if "username" not in options or "password" not in options:
            raise ConfigError(
                f"{where}: sasl.jaas.config names no username and password "
                '(username="..." password="...").'
            )
        out["sasl.username"], out["sasl.password"] = options["username"], options["password"]
    for store in ("truststore", "keystore"):
        location = java.get(f"ssl.{store}.location")
        kind = java.get(f"ssl.{store}.type", "JKS").upper()
        if location is None:
            continue
        if store == "keystore" and kind == "PKCS12":  # librdkafka reads those itself
            out.update({k: java[k] for k in keystore if k in java})
        elif kind != "PEM":
            raise ConfigError(
                f"{where}: ssl.{store}.location is a {kind} store, which librdkafka cannot "
                f"read; export it as PEM (e.g. `keytool -exportcert -rfc -keystore "
                f"{location}`) and set ssl.{store}.type=PEM."
            )
        elif store == "truststore":
            out["ssl.ca.location"] = location
        else:  # a PEM key store holds the key and its certificate, as alertbench writes it
            out["ssl.certificate.location"] = out["ssl.key.location"] = location
    if java.get("ssl.endpoint.identification.algorithm", None) == "":
        out["ssl.endpoint.identification.algorithm"] = "none"
    return out
