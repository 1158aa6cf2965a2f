"""Users of a secured cluster: SCRAM credentials and ACLs, through Kafka's admin API.

A user reads topics (by name, or every topic starting with a prefix written
``PREFIX*``) with consumer groups whose names start with its group prefix, and
may write topics. What no ACL grants, the cluster's authorizer denies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from alertbench.errors import ClusterError, ConfigError
from alertbench.kafka.admin import admin_client
from alertbench.kafka.client_files import check_format, write_formats
from alertbench.kafka.security import (
    SCRAM_ITERATIONS,
    Kafka,
    client_properties,
    explain,
    new_password,
    uses_sasl,
    uses_tls,
    write_client_properties,
    write_secret,
)
from alertbench.kafka.tls import KeyPair, issue


@dataclass
class Grant:
    """What a user may do.

    Attributes
    ----------
    read : list of str
        Topics it reads; ``PREFIX*`` means every topic starting with PREFIX.
    write : list of str
        Topics it writes, the same way.
    group_prefix : str
        Consumer groups it may use start with this.
    """

    read: list[str] = field(default_factory=list)
    write: list[str] = field(default_factory=list)
    group_prefix: str = ""


def _pattern(name: str) -> tuple[str, ResourcePatternType]:
    if name.endswith("*"):
        return name[:-1], ResourcePatternType.PREFIXED
    return name, ResourcePatternType.LITERAL


def acl_bindings(user: str, grant: Grant) -> list[AclBinding]:
    """The ACLs that give ``user`` exactly ``grant``."""
    principal = f"User:{user}"

    def allow(kind: ResourceType, name: str, op: AclOperation) -> AclBinding:
        resource, pattern = _pattern(name)
        return AclBinding(kind, resource, pattern, principal, "*", op, AclPermissionType.ALLOW)

    out = []
    for topic in grant.read:
        out += [
            allow(ResourceType.TOPIC, topic, op)
            for op in (AclOperation.READ, AclOperation.DESCRIBE)
        ]
    for topic in grant.write:
        out += [
            allow(ResourceType.TOPIC, topic, op)
            for op in (AclOperation.WRITE, AclOperation.DESCRIBE)
        ]
    if grant.read:
        out.append(allow(ResourceType.GROUP, f"{grant.group_prefix or user}*", AclOperation.READ))
    # A topic both read and written needs DESCRIBE once: Kafka refuses a duplicate binding.
    return list(dict.fromkeys(out))


def _check_name(name: str) -> None:
    if not name or any(c in name for c in ",=; \t\"'") or name.startswith("-"):
        raise ConfigError(
            f"user name {name!r} cannot be used: give letters, digits, '.', '_' or '-'."
        )


def _check_password(password: str) -> None:
    # Client files are key=value lines read with their ends stripped; JAAS quotes no newlines.
    if password != password.strip() or any(ord(c) < 32 or ord(c) == 127 for c in password):
        raise ConfigError(
            "the password starts or ends with a space, or holds a line break or control "
            "character, which a client properties file cannot carry; choose another "
            "(quotes and backslashes are fine)."
        )


def _wait(futures: dict, what: str) -> None:
    for key, future in futures.items():
        try:
            future.result(timeout=30)
        except KafkaException as exc:
            raise ClusterError(f"{what} ({key}): {explain(exc)}") from exc


def add_user(
    kafka: Kafka,
    name: str,
    grant: Grant,
    *,
    protocol: str,
    servers: str,
    out: Path,
    ca_file: Path | None = None,
    ca: KeyPair | None = None,
    password: str | None = None,
    formats: list[str] | None = None,
) -> Path:
    """Create (or update) a user, its ACLs and its client files.

    Parameters
    ----------
    kafka : str or Connection
        The cluster, as an admin.
    name : str
        The user.
    grant : Grant
        Its topics and groups.
    protocol : str
        The listener the user will connect to (decides SASL and TLS properties).
    servers : str
        That listener's bootstrap servers, written into the file.
    out : Path
        The properties file to write (mode 0600).
    ca_file : Path, optional
        The CA the user's client trusts (TLS listeners).
    ca : KeyPair, optional
        Signs the user's certificate under mutual TLS (``ssl``).
    password : str, optional
        Its SCRAM password; a random one by default. Quotes and backslashes
        are carried (escaped for Java clients); a line break or a space at
        either end is refused.
    formats : list of str, optional
        More client files to write beside ``out``: ``java``, ``kafka-python``
        (:mod:`alertbench.kafka.client_files`).

    Returns
    -------
    Path
        The librdkafka properties file.
    """
    _check_name(name)
    for fmt in formats or []:
        check_format(fmt)
    by_certificate = uses_tls(protocol) and not uses_sasl(protocol)
    if by_certificate and ca is None:
        # Refused before anything is created: no user left half made.
        raise ConfigError(
            "this cluster authenticates by certificate and alertbench holds no CA key to "
            "issue one; issue the user's certificate with your CA."
        )
    if password is not None:
        _check_password(password)
    admin = admin_client(kafka)
    key_store = None
    password = password or new_password()
    # A user may connect on any listener: SCRAM credentials serve the SASL ones.
    upsert = UserScramCredentialUpsertion(
        name, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS), password.encode()
    )
    _wait(admin.alter_user_scram_credentials([upsert]), "cannot store the user's credentials")
    bindings = acl_bindings(name, grant)
    if bindings:
        _wait(admin.create_acls(bindings), "cannot create the user's ACLs")
    if by_certificate:
        key_store = out.with_suffix(".pem")
        write_secret(key_store, issue(ca, name).pem)  # type: ignore[arg-type]
    props = {
        "bootstrap.servers": servers,
        **client_properties(
            protocol, user=name, password=password, ca_file=ca_file, key_store=key_store
        ),
    }
    header = f"Kafka user {name}: keep this file private."
    write_client_properties(out, props, header=header)
    write_formats(out, props, formats or [], header=header)
    return out


@dataclass
class User:
    """A user as the cluster knows it: credentials and ACLs."""

    name: str
    mechanisms: list[str] = field(default_factory=list)
    acls: list[str] = field(default_factory=list)


def list_users(kafka: Kafka) -> list[User]:
    """Every user with SCRAM credentials or ACLs, sorted by name."""
    admin = admin_client(kafka)
    users: dict[str, User] = {}
    try:
        described = admin.describe_user_scram_credentials().result(timeout=30)
    except KafkaException as exc:
        raise ClusterError(f"cannot list users: {explain(exc)}") from exc
    for name, desc in described.items():
        users.setdefault(name, User(name)).mechanisms = [
            str(info.mechanism).rsplit(".", 1)[-1] for info in desc.scram_credential_infos
        ]
    for binding in _acls(admin):
        name = binding.principal.removeprefix("User:")
        pattern = "*" if binding.resource_pattern_type == ResourcePatternType.PREFIXED else ""
        users.setdefault(name, User(name)).acls.append(
            f"{binding.operation.name} {binding.restype.name.lower()} {binding.name}{pattern}"
        )
    return sorted(users.values(), key=lambda u: u.name)


def _acl_filter(principal: str | None = None) -> AclBindingFilter:
    """Every ACL, or every ACL of ``principal``."""
    return AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        principal,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )


def _acls(admin) -> list[AclBinding]:
    try:
        return list(admin.describe_acls(_acl_filter()).result(timeout=30))
    except KafkaException as exc:
        raise ClusterError(f"cannot list ACLs: {explain(exc)}") from exc


def remove_user(kafka: Kafka, name: str) -> int:
    """Delete a user's credentials and every ACL of its principal; returns the ACLs removed.

    Raises
    ------
    ClusterError
        If the cluster knows no such user.
    """
    admin = admin_client(kafka)
    known = {u.name for u in list_users(kafka)}
    if name not in known:
        raise ClusterError(
            f"no user {name!r} on this cluster (users: {', '.join(sorted(known)) or 'none'})."
        )
    try:
        admin.alter_user_scram_credentials(
            [UserScramCredentialDeletion(name, ScramMechanism.SCRAM_SHA_512)]
        )[name].result(timeout=30)
    except KafkaException as exc:
        # A certificate user has ACLs and no SCRAM credential.
        if "RESOURCE_NOT_FOUND" not in str(exc) and "not found" not in str(exc).lower():
            raise ClusterError(f"cannot delete {name}'s credentials: {explain(exc)}") from exc
    removed = 0
    for future in admin.delete_acls([_acl_filter(f"User:{name}")]).values():
        try:
            removed += len(future.result(timeout=30))
        except KafkaException as exc:
            raise ClusterError(f"cannot delete {name}'s ACLs: {explain(exc)}") from exc
    return removed
