"""The secrets of a secured cluster alertbench starts: CA, host keys, the admin principal.

Everything lives in the cluster's state folder, under ``security/``, readable
by its owner only: the CA (made here, or the user's), the admin's client
properties (what alertbench's own commands connect with), and under mutual
TLS the admin's key store. Nodes get their own copies of key stores and
secrets in their config folders.
"""

from __future__ import annotations

from pathlib import Path

from alertbench.errors import ConfigError
from alertbench.kafka.inventory import Inventory
from alertbench.kafka.render import Secured
from alertbench.kafka.security import (
    ADMIN_USER,
    Connection,
    NodeSecurity,
    read_client_properties,
    uses_tls,
    write_client_properties,
    write_secret,
)
from alertbench.kafka.tls import KeyPair, issue, load_ca, load_host_pair, new_ca

SECURITY_DIR = "security"
ADMIN_PROPERTIES = "admin.properties"
CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"


def prepare(
    sec: NodeSecurity,
    inv: Inventory,
    folder: Path,
    *,
    ca_cert: Path | None = None,
    ca_key: Path | None = None,
) -> Secured:
    """Make (or check) every key and secret a new secured cluster needs; nothing starts.

    Parameters
    ----------
    sec : NodeSecurity
        Protocols and generated passwords.
    inv : Inventory
        The hosts; those with ``tls_cert``/``tls_key`` keep their own files.
    folder : Path
        The cluster's state folder; ``security/`` is made in it.
    ca_cert, ca_key : Path, optional
        A CA the user gives; without its key every host must bring its own
        certificate.

    Returns
    -------
    Secured
        For rendering the nodes' files.

    Raises
    ------
    ConfigError
        Missing, unreadable, expired or mismatched files, naming them.
    """
    sec.check()
    out = folder / SECURITY_DIR
    secured = Secured(security=sec)
    key_store = None
    kafka_hosts = [h for h in inv.hosts if h.has("broker") or h.has("controller")]
    # The controller listener is TLS only when the main one is: any_tls covers it.
    if sec.secured and sec.any_tls:
        ca: KeyPair | None
        if ca_cert is not None:
            ca_pem, ca = load_ca(ca_cert, ca_key)
        else:
            ca = new_ca(f"alertbench CA {folder.name}")
            ca_pem = ca.cert
        for host in kafka_hosts:
            if host.tls_cert or host.tls_key:
                if not (host.tls_cert and host.tls_key):
                    raise ConfigError(
                        f"host {host.name} gives only one of tls_cert and tls_key; give both."
                    )
                secured.pairs[host.name] = load_host_pair(
                    host.tls_cert, host.tls_key, host.address, ca_pem
                )
            elif ca is None:
                raise ConfigError(
                    f"host {host.name} has no tls_cert/tls_key and no CA key was given to issue "
                    "one; give tls_ca_key, or each host's certificate and key."
                )
            else:
                secured.pairs[host.name] = issue(ca, host.name, [host.address])
        secured.ca_pem = ca_pem
        write_secret(out / CA_CERT, ca_pem)
        if ca is not None:
            write_secret(out / CA_KEY, ca.key)
        if sec.protocol == "ssl":
            if ca is None:
                raise ConfigError(
                    "security 'ssl' authenticates clients by certificate: give tls_ca_key so "
                    "alertbench can issue the admin's."
                )
            key_store = out / f"{ADMIN_USER}.pem"
            write_secret(key_store, issue(ca, ADMIN_USER).pem)
    if sec.secured:
        ca_file = out / CA_CERT if uses_tls(sec.protocol) else None
        write_client_properties(
            out / ADMIN_PROPERTIES,
            {
                "bootstrap.servers": inv.bootstrap_servers,
                **sec.admin_properties(ca_file, key_store),
            },
            header="alertbench's admin principal (a Kafka super user); keep it private.",
        )
    return secured


def admin_connection(folder: Path, servers: str) -> Connection:
    """How alertbench's own commands reach the cluster whose state folder is ``folder``."""
    path = folder / SECURITY_DIR / ADMIN_PROPERTIES
    if not path.exists():
        return Connection(servers)
    return Connection.build(servers, read_client_properties(path), source=path)


def ca_key(folder: Path) -> KeyPair | None:
    """The CA alertbench may sign user certificates with, if it holds its key."""
    sec = folder / SECURITY_DIR
    if not (sec / CA_KEY).exists():
        return None
    return KeyPair((sec / CA_KEY).read_text(), (sec / CA_CERT).read_text())
