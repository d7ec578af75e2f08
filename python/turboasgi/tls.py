"""uvicorn's ``--ssl-*`` options turned into the Rust core's ``TlsConfig`` (rustls).

The files are read here, so that an unreadable one is reported with the option that names it; a
password-protected key is decrypted here with the ``cryptography`` package (traditional
``Proc-Type: 4,ENCRYPTED`` PEM and encrypted PKCS#8 alike) and handed over unencrypted. Parsing the
PEM, matching key and certificate, and mapping the cipher names happen in Rust.
"""

from __future__ import annotations

import os
import re
import ssl
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from turboasgi._core import TlsConfig
    from turboasgi.config import Config

__all__ = ["TLSSetupError", "build_tls_config", "SSL_VERSIONS"]

TLS12 = 0x0303
TLS13 = 0x0304

# uvicorn passes --ssl-version to ssl.SSLContext(): a PROTOCOL_* constant. The TLSVersion values
# (771, 772) are accepted too, as the one way to ask for TLS 1.3 only.
SSL_VERSIONS: dict[int, tuple[int, ...]] = {
    int(ssl.PROTOCOL_TLS_SERVER): (TLS12, TLS13),
    2: (TLS12, TLS13),  # ssl.PROTOCOL_TLS, the deprecated alias (gunicorn's default)
    5: (TLS12,),  # ssl.PROTOCOL_TLSv1_2
    int(ssl.TLSVersion.TLSv1_2): (TLS12,),
    int(ssl.TLSVersion.TLSv1_3): (TLS13,),
}
_SUPPORTED_VERSIONS = (
    "17 (PROTOCOL_TLS_SERVER: TLS 1.2 and 1.3; also 2, PROTOCOL_TLS), 5 (PROTOCOL_TLSv1_2), "
    "771 (TLSVersion.TLSv1_2) or 772 (TLSVersion.TLSv1_3)"
)
_KEY_BLOCK = re.compile(
    rb"-----BEGIN ((?:ENCRYPTED |RSA |EC )?PRIVATE KEY)-----.*?-----END \1-----", re.DOTALL
)


class TLSSetupError(Exception):
    """A ``--ssl-*`` option cannot be used; the message starts with the option's name."""


def _read(option: str, path: str | os.PathLike[str]) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise TLSSetupError(f"{option}: cannot read {os.fspath(path)!r}: {exc.strerror or exc}") from None


def _is_encrypted(key_pem: bytes) -> bool:
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in key_pem or b"Proc-Type: 4,ENCRYPTED" in key_pem


def _decrypt_key(key_pem: bytes, password: str) -> bytes:
    """The first private key of ``key_pem`` as unencrypted PKCS#8 PEM."""
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        raise TLSSetupError(
            "--ssl-keyfile-password: decrypting the key needs the 'cryptography' package "
            "(pip install cryptography), or give an unencrypted key"
        ) from None
    block = _KEY_BLOCK.search(key_pem)
    if block is None:
        raise TLSSetupError("--ssl-keyfile: no PEM private key found")
    try:
        key: Any = serialization.load_pem_private_key(block.group(0), password.encode())
    except (ValueError, TypeError) as exc:
        reason = str(exc).split("\n")[0] or type(exc).__name__
        raise TLSSetupError(
            f"--ssl-keyfile-password: cannot decrypt the key of --ssl-keyfile (wrong password?): {reason}"
        ) from None
    return key.private_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def build_tls_config(config: Config) -> TlsConfig:
    """Read and check every ``ssl_*`` setting of ``config``; raises ``TLSSetupError``."""
    from turboasgi._core import TlsConfig

    if not config.ssl_certfile:
        raise TLSSetupError("--ssl-certfile: required to serve TLS (--ssl-keyfile was given without it)")
    versions = SSL_VERSIONS.get(int(config.ssl_version))
    if versions is None:
        raise TLSSetupError(f"--ssl-version: {config.ssl_version} unsupported, use {_SUPPORTED_VERSIONS}")
    if int(config.ssl_cert_reqs) not in (0, 1, 2):
        raise TLSSetupError(
            f"--ssl-cert-reqs: {config.ssl_cert_reqs} is not 0 (CERT_NONE), 1 (CERT_OPTIONAL) "
            "or 2 (CERT_REQUIRED)"
        )
    certfile = _read("--ssl-certfile", config.ssl_certfile)
    # Like ssl.SSLContext.load_cert_chain(): without a key file, the key is in the certificate file.
    keyfile = _read("--ssl-keyfile", config.ssl_keyfile) if config.ssl_keyfile else certfile
    if _is_encrypted(keyfile):
        if not config.ssl_keyfile_password:
            raise TLSSetupError(
                "--ssl-keyfile: the key is encrypted; give its password with --ssl-keyfile-password"
            )
        keyfile = _decrypt_key(keyfile, config.ssl_keyfile_password)
    ca_certs = _read("--ssl-ca-certs", config.ssl_ca_certs) if config.ssl_ca_certs else None
    try:
        return TlsConfig(
            certfile=certfile,
            keyfile=keyfile,
            versions=list(versions),
            cert_reqs=int(config.ssl_cert_reqs),
            ca_certs=ca_certs,
            ciphers=config.ssl_ciphers or None,
        )
    except ValueError as exc:
        raise TLSSetupError(str(exc)) from None
