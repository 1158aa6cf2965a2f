"""TLS material for a cluster: a CA, per-host and per-user certificates, all PEM.

Kafka reads PEM key stores natively (``ssl.keystore.type=PEM``), librdkafka
reads PEM files, so no JKS or PKCS#12 conversion is needed. Certificates are
made with ``cryptography``; each host's names its address (as an IP address or
DNS name), so clients that verify host names (librdkafka does by default)
accept it. Files a user brings are checked here before anything starts.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from alertbench.errors import ConfigError

# Two years: long enough for a campaign of benchmarks, short enough to notice.
VALID_DAYS = 730


@dataclass
class KeyPair:
    """A private key and its certificate, as PEM text.

    Attributes
    ----------
    key : str
        The private key (PKCS#8, unencrypted: the file is what is protected).
    cert : str
        The certificate (for a host or user: its own, then the CA's).
    """

    key: str
    cert: str

    @property
    def pem(self) -> str:
        """Key and certificate chain in one file, as Kafka's PEM key store wants it."""
        return self.key + self.cert


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_ca(name: str = "alertbench CA") -> KeyPair:
    """A self-signed certificate authority (P-256 key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(_key_pem(key), _cert_pem(cert))


def _subject_names(names: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def issue(ca: KeyPair, common_name: str, names: list[str] | None = None) -> KeyPair:
    """A certificate signed by ``ca`` for a host (``names``: its addresses) or a user.

    Host certificates serve both ends of a TLS connection: a node is a
    server to clients and a client of the other nodes.

    Parameters
    ----------
    ca : KeyPair
        The signing authority.
    common_name : str
        The subject's CN: the host's name, or the user's (the principal under
        mutual TLS).
    names : list of str, optional
        Addresses and DNS names the certificate is valid for.

    Returns
    -------
    KeyPair
        The new key, and the certificate followed by the CA's.
    """
    ca_key = serialization.load_pem_private_key(ca.key.encode(), password=None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert.encode())
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=VALID_DAYS), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(_subject_names(names)), critical=False
        )
    cert = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    return KeyPair(_key_pem(key), _cert_pem(cert) + ca.cert)


def _read(path: Path, what: str) -> bytes:
    if not path.exists():
        raise ConfigError(f"the {what} {path} does not exist; give an existing PEM file.")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"the {what} {path} cannot be read ({exc.strerror}); check its permissions."
        ) from exc


def _certs(data: bytes, path: Path, what: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ConfigError(
            f"the {what} {path} holds no PEM certificate ({exc}); give a PEM file "
            "(-----BEGIN CERTIFICATE-----)."
        ) from exc
    now = _now()
    for cert in certs:
        if cert.not_valid_after_utc < now:
            raise ConfigError(
                f"the {what} {path} expired on {cert.not_valid_after_utc:%Y-%m-%d} "
                f"({cert.subject.rfc4514_string()}); issue a new one."
            )
        if cert.not_valid_before_utc > now:
            raise ConfigError(
                f"the {what} {path} is not valid before {cert.not_valid_before_utc:%Y-%m-%d}; "
                "check the clock of the machine that issued it."
            )
    return certs


def load_ca(cert_file: Path, key_file: Path | None = None) -> tuple[str, KeyPair | None]:
    """A CA the user gives: its certificate, and its key if alertbench should sign with it.

    Returns
    -------
    tuple
        The CA certificate(s) as PEM text, and the key pair (``None`` without a key).

    Raises
    ------
    ConfigError
        Missing, unreadable, not PEM, expired, or a key that is not the certificate's.
    """
    data = _read(cert_file, "CA certificate")
    certs = _certs(data, cert_file, "CA certificate")
    if key_file is None:
        return data.decode(), None
    key = _private_key(key_file, "CA key")
    _check_match(key, certs[0], key_file, cert_file)
    return data.decode(), KeyPair(_key_pem(key), data.decode())  # type: ignore[arg-type]


def _private_key(path: Path, what: str):
    data = _read(path, what)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:
        raise ConfigError(
            f"the {what} {path} is encrypted; give it unencrypted (protect the file with "
            "mode 0600 instead)."
        ) from exc
    except ValueError as exc:
        raise ConfigError(
            f"the {what} {path} holds no PEM private key ({exc}); give a PEM file "
            "(-----BEGIN PRIVATE KEY-----)."
        ) from exc


def _check_match(key, cert: x509.Certificate, key_file: Path, cert_file: Path) -> None:
    mine = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    theirs = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if mine != theirs:
        raise ConfigError(
            f"the key {key_file} does not belong to the certificate {cert_file} "
            f"({cert.subject.rfc4514_string()}); give the key the certificate was issued for."
        )


def load_host_pair(cert_file: Path, key_file: Path, address: str, ca_pem: str) -> KeyPair:
    """A host's certificate and key that the user gives, checked before anything starts.

    Raises
    ------
    ConfigError
        Missing, unreadable, expired, mismatched, not naming ``address``, or
        not issued by the CA clients trust.
    """
    data = _read(cert_file, "certificate")
    certs = _certs(data, cert_file, "certificate")
    key = _private_key(key_file, "key")
    _check_match(key, certs[0], key_file, cert_file)
    try:
        sans = certs[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        named = {str(n) for n in sans.get_values_for_type(x509.IPAddress)}
        named |= set(sans.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        named = set()
    if address not in named:
        raise ConfigError(
            f"the certificate {cert_file} does not name the host's address {address} "
            f"(it names: {', '.join(sorted(named)) or 'nothing'}); clients check it. Issue it "
            f"with {address} as a subject alternative name."
        )
    ca_certs = x509.load_pem_x509_certificates(ca_pem.encode())
    issuers = {c.subject for c in ca_certs}
    if certs[0].issuer not in issuers:
        raise ConfigError(
            f"the certificate {cert_file} was issued by {certs[0].issuer.rfc4514_string()}, "
            "not by the CA clients are told to trust; give that CA as tls_ca_cert."
        )
    chain = data.decode()
    return KeyPair(_key_pem(key), chain)  # type: ignore[arg-type]
