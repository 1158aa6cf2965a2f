"""How clients reach a cluster (servers plus security) and what a secured node runs.

A :class:`Connection` is the bootstrap servers and the client's security
properties, in librdkafka's names (``security.protocol``, ``sasl.mechanism``,
``sasl.username``, ``sasl.password``, ``ssl.ca.location``...). Every client of
alertbench is built from one: confluent-kafka takes the properties as they are;
Spark's Kafka source gets them translated to the Java client's names
(:meth:`Connection.java_options`). The same properties live in a client
properties file, mode 0600, as ``kafka user add`` writes them.

:class:`NodeSecurity` renders the security part of a node's
``server.properties``: one listener per protocol, SCRAM-SHA-512 for clients and
between brokers, SASL/PLAIN or mutual TLS on the KRaft controller listener
(SCRAM credentials live in the metadata the controllers serve, so they cannot
authenticate the controllers themselves), and an authorizer that denies what
no ACL grants.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from confluent_kafka import KafkaError

from alertbench.errors import ConfigError
from alertbench.kafka.java_client import from_java, is_java
from alertbench.procs import LocalTransport

SecurityProtocol = Literal["plaintext", "sasl_plaintext", "ssl", "sasl_ssl"]
PROTOCOLS: tuple[str, ...] = get_args(SecurityProtocol)
MECHANISM = "SCRAM-SHA-512"
SCRAM_ITERATIONS = 8192
ADMIN_USER = "admin"
# Brokers authenticate to KRaft controllers with SASL/PLAIN under this name.
CONTROLLER_USER = "controller"
SECRET_KEYS = ("sasl.password", "ssl.key.password", "ssl.keystore.password")


def kafka_error(exc: BaseException | KafkaError) -> KafkaError | None:
    """The KafkaError itself, the one a KafkaException carries, or None."""
    if isinstance(exc, KafkaError):
        return exc
    return exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None


def explain(exc: BaseException | KafkaError) -> str:
    """A Kafka failure in words, with what to do when it is about credentials."""
    err = kafka_error(exc)
    text = err.str() if err is not None else str(exc)
    code = err.code() if err is not None else None
    if code == KafkaError._AUTHENTICATION or "Authentication failed" in text:
        return (
            f"{text.rstrip('.')}. The user name or password is wrong, or the user does not "
            "exist: check the client config (`alertbench kafka user list` shows the users; "
            "`alertbench kafka check-client FILE` checks a file step by step)."
        )
    if code in (
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    ):
        return (
            f"{text.rstrip('.')}. No ACL grants this user that; `alertbench kafka user add` "
            "grants ACLs."
        )
    if "SSL handshake failed" in text or "certificate verify failed" in text:
        return (
            f"{text.rstrip('.')}. The client does not trust the cluster's certificate: point "
            "ssl.ca.location at the cluster's CA."
        )
    return text


def uses_sasl(protocol: str) -> bool:
    """Whether ``protocol`` authenticates with SASL."""
    return protocol.startswith("sasl_")


def uses_tls(protocol: str) -> bool:
    """Whether ``protocol`` encrypts with TLS."""
    return protocol.endswith("ssl")


def check_protocol(protocol: str, where: str) -> str:
    """``protocol`` in lower case, or a ConfigError naming ``where`` and the choices."""
    lowered = protocol.lower()
    if lowered not in PROTOCOLS:
        raise ConfigError(
            f"{where}: unknown security protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}."
        )
    return lowered


def new_password() -> str:
    """A random password (32 url-safe characters)."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Connection:
    """Where a client connects and with which security properties.

    Attributes
    ----------
    servers : str
        Bootstrap servers, ``HOST:PORT,...``.
    options : tuple of (str, str)
        librdkafka security properties, e.g. ``("security.protocol", "SASL_SSL")``.
        A tuple so that a connection can key a cache of clients.
    source : str or None
        The client properties file these came from, handed to child processes
        (the secret stays in the file, not on a command line).
    """

    servers: str
    options: tuple[tuple[str, str], ...] = ()
    source: str | None = field(default=None, compare=False)

    @classmethod
    def of(cls, value: str | Connection) -> Connection:
        """A connection from a plain servers string (a PLAINTEXT cluster) or itself."""
        return value if isinstance(value, Connection) else cls(value)

    @classmethod
    def build(
        cls, servers: str, options: dict[str, str] | None = None, source: Path | None = None
    ) -> Connection:
        """A connection from servers and a dict of properties."""
        props = {k: str(v) for k, v in (options or {}).items() if k != "bootstrap.servers"}
        return cls(servers, tuple(sorted(props.items())), str(source) if source else None)

    @property
    def props(self) -> dict[str, str]:
        """The security properties as a dict."""
        return dict(self.options)

    @property
    def protocol(self) -> str:
        """The security protocol, lower case."""
        return self.props.get("security.protocol", "plaintext").lower()

    def conf(self, extra: dict[str, object] | None = None) -> dict[str, object]:
        """A confluent-kafka configuration: servers, security, then ``extra``."""
        return {"bootstrap.servers": self.servers, **self.props, **(extra or {})}

    def java_options(self, prefix: str = "kafka.") -> dict[str, str]:
        """The Java client's properties (``prefix`` + name) for servers and security."""
        out = {f"{prefix}bootstrap.servers": self.servers}
        out.update({prefix + k: v for k, v in java_properties(self.props).items()})
        return out

    def redacted(self) -> dict[str, str]:
        """The properties with every secret replaced, for logs and results."""
        return {k: ("[hidden]" if k in SECRET_KEYS else v) for k, v in self.props.items()}

    def describe(self) -> str:
        """``servers (PROTOCOL as USER)`` for people; never the password."""
        props = self.props
        user = props.get("sasl.username")
        proto = self.protocol.upper()
        return f"{self.servers} ({proto}{f' as {user}' if user else ''})"

    def __repr__(self) -> str:
        return f"Connection({self.servers!r}, {self.redacted()!r})"


# A cluster to talk to: a Connection, or bootstrap servers of a PLAINTEXT one.
Kafka = str | Connection


def java_properties(props: dict[str, str]) -> dict[str, str]:
    """Librdkafka security properties translated to the Java client's.

    Raises
    ------
    ConfigError
        For a SASL mechanism alertbench does not translate.
    """
    out: dict[str, str] = {}
    protocol = props.get("security.protocol", "plaintext").lower()
    out["security.protocol"] = protocol.upper()
    if uses_sasl(protocol):
        mechanism = props.get("sasl.mechanism", MECHANISM).upper()
        module = {
            "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
            "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
            "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
        }.get(mechanism)
        if module is None:
            raise ConfigError(
                f"sasl.mechanism {mechanism} cannot be handed to Spark's Kafka source; use "
                "SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN."
            )
        out["sasl.mechanism"] = mechanism
        out["sasl.jaas.config"] = jaas(
            module, props.get("sasl.username", ""), props.get("sasl.password", "")
        )
    if uses_tls(protocol):
        if "ssl.ca.location" in props:
            out["ssl.truststore.type"] = "PEM"
            out["ssl.truststore.location"] = props["ssl.ca.location"]
        if "ssl.certificate.location" in props:
            # alertbench writes key and certificate into one file, as a PEM key store is.
            out["ssl.keystore.type"] = "PEM"
            out["ssl.keystore.location"] = props["ssl.certificate.location"]
        if props.get("ssl.endpoint.identification.algorithm", "https") == "none":
            out["ssl.endpoint.identification.algorithm"] = ""
    return out


def jaas(module: str, user: str, password: str, **users: str) -> str:
    r"""A ``sasl.jaas.config`` value (``users``: PLAIN's ``user_NAME`` entries).

    Values are quoted as Kafka's JAAS parser reads them (a
    ``StreamTokenizer``: ``\\`` and ``\"`` inside quotes), so a password
    holding either is passed on whole, never cut short or read as more options.

    Raises
    ------
    ConfigError
        For a value with a line break or another control character, which
        the parser cannot carry.
    """

    def quoted(what: str, value: str) -> str:
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ConfigError(
                f"the {what} has a line break or control character, which Kafka's JAAS "
                "configuration cannot hold; choose one without."
            )
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    parts = [f"username={quoted('user name', user)}", f"password={quoted('password', password)}"]
    parts += [f"user_{name}={quoted(f'password of {name}', pw)}" for name, pw in users.items()]
    return f"{module} required {' '.join(parts)};"


def scram_credential(password: str, iterations: int = SCRAM_ITERATIONS) -> dict[str, str]:
    """A salted SCRAM-SHA-512 credential (RFC 5802's SaltedPassword), base64.

    Lets ``kafka-storage format --add-scram`` bootstrap the admin's credential
    without the password on its command line.
    """
    salt = os.urandom(32)
    salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return {
        "salt": base64.b64encode(salt).decode(),
        "saltedpassword": base64.b64encode(salted).decode(),
        "iterations": str(iterations),
    }


def read_client_properties(path: Path) -> dict[str, str]:
    """A client properties file, as librdkafka's names.

    Either librdkafka's own (``key=value`` lines, values as they are, as
    ``kafka user add`` writes them), or a Java client's, the file Kafka's
    tools take (``sasl.jaas.config``, trust stores): that one is read as Java
    properties and translated (:mod:`alertbench.kafka.java_client`).

    Raises
    ------
    ConfigError
        If it is missing, unreadable, or has a line that is not ``key=value``.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(
            f"the client config {path} does not exist; `alertbench kafka user add NAME` writes "
            "one, or give librdkafka properties (security.protocol=..., sasl.username=...)."
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the client config {path}: {exc.strerror}.") from exc
    out = from_java(text, str(path)) if is_java(text) else _librdkafka_lines(text, path)
    if "security.protocol" in out:
        check_protocol(out["security.protocol"], f"{path}: security.protocol")
    return out


def _librdkafka_lines(text: str, path: Path) -> dict[str, str]:
    """Read librdkafka's own format: ``key=value`` lines, values as they are."""
    out = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", "!")):
            continue
        if "=" not in line:
            raise ConfigError(f"{path}, line {n}: expected key=value, found {line[:40]!r}.")
        key, value = line.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def write_client_properties(path: Path, props: dict[str, str], header: str = "") -> None:
    """Write a client properties file readable by its owner only (mode 0600)."""
    lines = [f"# {h}" for h in header.splitlines()] + [f"{k}={v}" for k, v in props.items()]
    write_secret(path, "\n".join(lines) + "\n")


def write_secret(path: Path, text: str) -> None:
    """Write a file readable by its owner only (mode 0600), atomically."""
    LocalTransport().write_text(path, text, secret=True)


def client_file(conn: Connection, path: Path) -> Path | None:
    """A properties file holding ``conn``'s security, for a child process; None if plaintext.

    The file the connection came from if there is one, else ``path``, written 0600.
    """
    if not conn.options:
        return None
    if conn.source:
        return Path(conn.source)
    write_client_properties(path, {"bootstrap.servers": conn.servers, **conn.props})
    return path


def client_properties(
    protocol: str,
    *,
    user: str | None = None,
    password: str | None = None,
    ca_file: Path | None = None,
    key_store: Path | None = None,
) -> dict[str, str]:
    """Librdkafka security properties for a user of a cluster secured with ``protocol``."""
    props = {"security.protocol": protocol.upper()}
    if uses_sasl(protocol):
        props["sasl.mechanism"] = MECHANISM
        props["sasl.username"] = user or ""
        props["sasl.password"] = password or ""
    if uses_tls(protocol):
        if ca_file is not None:
            props["ssl.ca.location"] = str(ca_file)
        if key_store is not None and not uses_sasl(protocol):
            props["ssl.certificate.location"] = str(key_store)
            props["ssl.key.location"] = str(key_store)
    return props


@dataclass
class NodeSecurity:
    """What a secured cluster's nodes share: protocols, secrets, key store paths.

    Attributes
    ----------
    protocol : str
        The main listener's protocol: alertbench's own clients and the traffic
        between brokers use it.
    listeners : list of str
        More listeners, one per protocol (each on its own port).
    admin_password : str
        The SCRAM password of the admin principal (a super user).
    controller_password : str
        The SASL/PLAIN password brokers use towards KRaft controllers.
    """

    protocol: str
    listeners: list[str] = field(default_factory=list)
    admin_password: str = field(default_factory=new_password)
    controller_password: str = field(default_factory=new_password)

    @property
    def protocols(self) -> list[str]:
        """Every listener's protocol, the main one first."""
        return [self.protocol, *(p for p in self.listeners if p != self.protocol)]

    @property
    def secured(self) -> bool:
        """Whether the cluster authenticates clients at all."""
        return self.protocol != "plaintext"

    @property
    def any_sasl(self) -> bool:
        """Whether any listener takes SCRAM credentials."""
        return any(uses_sasl(p) for p in self.protocols)

    @property
    def any_tls(self) -> bool:
        """Whether any listener needs key stores (the KRaft controller one is TLS only then)."""
        return any(uses_tls(p) for p in self.protocols)

    def check(self) -> None:
        """Refuse combinations alertbench cannot run securely.

        Raises
        ------
        ConfigError
            A plaintext main listener with secured extras (alertbench's own
            clients would be anonymous), or an unknown protocol.
        """
        for p in self.protocols:
            check_protocol(p, "kafka security")
        if not self.secured and self.listeners:
            raise ConfigError(
                "security 'plaintext' with more listeners: alertbench's own clients and the "
                "brokers would talk anonymously. Set security to the main protocol (e.g. "
                "sasl_ssl) and list the others as listeners."
            )

    def controller_protocol(self) -> str:
        """The KRaft controller listener's protocol: SASL/PLAIN, or mutual TLS for ``ssl``."""
        if self.protocol == "ssl":
            return "SSL"
        return "SASL_SSL" if uses_tls(self.protocol) else "SASL_PLAINTEXT"

    def admin_properties(self, ca_file: Path | None, key_store: Path | None) -> dict[str, str]:
        """The admin principal's client properties."""
        return client_properties(
            self.protocol,
            user=ADMIN_USER,
            password=self.admin_password,
            ca_file=ca_file,
            key_store=key_store,
        )

    def server_properties(
        self,
        *,
        kraft: bool,
        node_names: list[str],
        key_store: Path | None,
        trust_store: Path | None,
    ) -> dict[str, str | int]:
        """The security properties of one node (listeners themselves are rendered elsewhere).

        Parameters
        ----------
        kraft : bool
            KRaft (controller listener, StandardAuthorizer) or ZooKeeper mode (AclAuthorizer).
        node_names : list of str
            Every node's certificate name, super users under mutual TLS.
        key_store, trust_store : Path, optional
            The node's PEM key store and the CA it trusts (TLS protocols).
        """
        props: dict[str, str | int] = {}
        main = self.protocol.upper()
        props["inter.broker.listener.name"] = main
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
        if self.any_sasl:
            props["sasl.enabled.mechanisms"] = MECHANISM
        if uses_sasl(self.protocol):
            props["sasl.mechanism.inter.broker.protocol"] = MECHANISM
        for proto in self.protocols:
            # Every SASL listener needs a login module; the main one's credentials are
            # also what a broker presents to the others.
            if uses_sasl(proto):
                props[f"listener.name.{proto}.{MECHANISM.lower()}.sasl.jaas.config"] = jaas(
                    scram, ADMIN_USER, self.admin_password
                )
        supers = [f"User:{ADMIN_USER}"]
        if kraft:
            props["authorizer.class.name"] = (
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
            )
            if self.protocol == "ssl":
                props["listener.name.controller.ssl.client.auth"] = "required"
            else:
                props["sasl.mechanism.controller.protocol"] = "PLAIN"
                props["listener.name.controller.sasl.enabled.mechanisms"] = "PLAIN"
                props["listener.name.controller.plain.sasl.jaas.config"] = jaas(
                    plain,
                    CONTROLLER_USER,
                    self.controller_password,
                    **{CONTROLLER_USER: self.controller_password},
                )
                supers.append(f"User:{CONTROLLER_USER}")
        else:
            props["authorizer.class.name"] = "kafka.security.authorizer.AclAuthorizer"
        if self.protocol == "ssl":
            # Under mutual TLS a principal is the certificate's CN; nodes are super users.
            props["ssl.client.auth"] = "required"
            props["ssl.principal.mapping.rules"] = "RULE:^CN=([^,]+)$/$1/,DEFAULT"
            supers += [f"User:{n}" for n in node_names]
        props["super.users"] = ";".join(supers)
        props["allow.everyone.if.no.acl.found"] = "false"
        if self.any_tls:
            props["ssl.keystore.type"] = "PEM"
            props["ssl.keystore.location"] = str(key_store)
            props["ssl.truststore.type"] = "PEM"
            props["ssl.truststore.location"] = str(trust_store)
            props["ssl.endpoint.identification.algorithm"] = "https"
        return props
