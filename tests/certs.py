"""Test certificates made with the ``openssl`` command (Debian's package), so that TLS tests need no
Python package that free-threaded CPython cannot install (``cryptography``, hence ``trustme``)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

OPENSSL = shutil.which("openssl")


@dataclass
class ServerCerts:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_options(self, *extra: str) -> list[str]:
        return ["--ssl-keyfile", str(self.key_file), "--ssl-certfile", str(self.cert_file), *extra]


def _openssl(*args: str, cwd: Path) -> None:
    assert OPENSSL is not None, "openssl is not installed"
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_server_certs(directory: Path, names: tuple[str, ...] = ("localhost", "127.0.0.1")) -> ServerCerts:
    """A CA and an ECDSA P-256 server certificate it signed for ``names`` (DNS names and IP addresses)."""
    key_args = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl(
        "req",
        "-x509",
        *key_args,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=turboasgi test CA",
        "-days",
        "2",
        cwd=directory,
    )
    _openssl(
        "req",
        *key_args,
        "-keyout",
        "key.pem",
        "-out",
        "server.csr",
        "-subj",
        f"/CN={names[0]}",
        cwd=directory,
    )
    alt = ",".join(f"IP:{n}" if n.replace(".", "").isdigit() or ":" in n else f"DNS:{n}" for n in names)
    (directory / "server.ext").write_text(f"subjectAltName={alt}\nextendedKeyUsage=serverAuth\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        cwd=directory,
    )
    return ServerCerts(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
