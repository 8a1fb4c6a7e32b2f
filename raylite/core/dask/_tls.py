"""The TLS credentials of a raylite Dask cluster: a private CA and one certificate signed by it.

``raylite start --head`` makes them once per user (and again when they are missing, unreadable
or about to expire) in the owner's state folder::

    ~/.raylite/            mode 0700 (RAYLITE_STATE_DIR to use another)
      tls/                 mode 0700
        ca.crt   ca.key    the cluster's own certificate authority          mode 0600
        node.crt node.key  the certificate every process of the cluster uses mode 0600

The scheduler, the workers and every client present ``node.crt`` and accept only peers whose
certificate ``ca.crt`` signed (mutual TLS, Dask's ``distributed.security.Security``), so a
process that cannot read this folder cannot connect, let alone submit work. Workers started by
``raylite start --address`` and clients of the same user (``raylite.init``, ``raylite status``)
find the folder by themselves; on another machine, copy it there (``scp -rp ~/.raylite/tls
HOST:.raylite/``) for the same user.
"""

from __future__ import annotations

import datetime
import os
import stat
from dataclasses import dataclass
from pathlib import Path

FOLDER = "tls"
VALID_DAYS = 5 * 365
RENEW_BEFORE_DAYS = 30
_NAME = "raylite-cluster"


@dataclass(frozen=True)
class Credentials:
    """Paths of the PEM files a cluster process needs."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def security(self):  # -> distributed.security.Security
        """Dask's Security for every role (scheduler, worker, client), encryption required."""
        from distributed.security import Security
        ca, cert, key = str(self.ca_file), str(self.cert_file), str(self.key_file)
        return Security(require_encryption=True, tls_ca_file=ca,
                        tls_client_cert=cert, tls_client_key=key,
                        tls_scheduler_cert=cert, tls_scheduler_key=key,
                        tls_worker_cert=cert, tls_worker_key=key)

    def command_line(self) -> list[str]:
        """The ``dask scheduler`` / ``dask worker`` options that use these credentials."""
        return ["--protocol", "tls", "--tls-ca-file", str(self.ca_file),
                "--tls-cert", str(self.cert_file), "--tls-key", str(self.key_file)]


def folder() -> Path:
    """``<state folder>/tls`` (not created)."""
    from raylite.core.dask._state import state_root
    return state_root() / FOLDER


def load() -> Credentials | None:
    """This user's credentials, or None when there are none.

    Raises PermissionError (naming the file and the fix) when a key or the folder can be read
    by other users: credentials others can read protect nothing.
    """
    directory = folder()
    credentials = _paths(directory)
    try:
        if not all(path.exists() for path in (credentials.ca_file, credentials.cert_file,
                                              credentials.key_file)):
            return None
    except PermissionError:
        raise PermissionError(f"cannot read {directory}: it belongs to another user (the "
                              "cluster's owner)") from None
    for path in (directory, credentials.key_file, directory / "ca.key"):
        if path.exists() and stat.S_IMODE(path.stat().st_mode) & 0o077:
            raise PermissionError(
                f"{path} can be read by other users (mode {stat.S_IMODE(path.stat().st_mode):o}): "
                f"run `chmod {'700' if path.is_dir() else '600'} {path}`")
    return credentials


def ensure() -> tuple[Credentials, str | None]:
    """This user's credentials, created (or renewed) when missing, exposed or expiring.

    Returns them and a note saying what was made and why (None when they were kept).
    """
    try:
        credentials = load()
    except PermissionError as exc:  # others could read them: they protect nothing any more
        note = f"new TLS credentials in {folder()} (the old ones were exposed: {exc})"
        return create(folder()), note
    if credentials is None:
        return create(folder()), f"new TLS credentials in {folder()}"
    if not _still_valid(credentials.cert_file):
        return create(folder()), f"renewed the TLS credentials in {folder()} (they were expiring)"
    return credentials, None


def create(directory: Path) -> Credentials:
    """Write a new CA and a certificate it signs into ``directory`` (0700; files 0600)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    now = datetime.datetime.now(datetime.timezone.utc)
    until = now + datetime.timedelta(days=VALID_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{_NAME} CA"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "raylite")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(until)
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=True,
                                            crl_sign=True, encipher_only=False,
                                            decipher_only=False), critical=True)
               .sign(ca_key, hashes.SHA256()))
    node_key = ec.generate_private_key(ec.SECP256R1())
    node_cert = (x509.CertificateBuilder()
                 .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _NAME)]))
                 .issuer_name(ca_name).public_key(node_key.public_key())
                 .serial_number(x509.random_serial_number())
                 .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(until)
                 .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                 .add_extension(x509.SubjectAlternativeName([x509.DNSName(_NAME)]),
                                critical=False)
                 .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                       ExtendedKeyUsageOID.CLIENT_AUTH]),
                                critical=False)
                 .sign(ca_key, hashes.SHA256()))
    credentials = _paths(directory)
    _write_private(directory / "ca.key", _key_pem(ca_key))
    _write_private(credentials.key_file, _key_pem(node_key))
    _write_private(credentials.cert_file, _cert_pem(node_cert))
    _write_private(credentials.ca_file, _cert_pem(ca_cert))
    return credentials


def _paths(directory: Path) -> Credentials:
    return Credentials(directory / "ca.crt", directory / "node.crt", directory / "node.key")


def _still_valid(cert_file: Path) -> bool:
    from cryptography import x509
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except (OSError, ValueError):
        return False
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
    return left > datetime.timedelta(days=RENEW_BEFORE_DAYS)


def _key_pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600 from the first byte (then rename into place)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(temporary, path)
