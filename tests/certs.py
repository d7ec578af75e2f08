"""Test certificates made at test time with the ``openssl`` command line: a CA, certificates it issues
(ECDSA P-256, PKCS#8 keys) and the PEM files the server options take.

No Python package is needed, so the TLS tests also run where ``cryptography`` (and so trustme) does not
install, such as free-threaded 3.13.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_serials = itertools.count(1000)


def available() -> bool:
    return shutil.which("openssl") is not None


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


_NEW_P256_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path

    @property
    def cert_pem(self) -> str:
        return self.cert.read_text()


@dataclass(frozen=True)
class CA:
    directory: Path
    name: str
    cert: Path
    key: Path

    @classmethod
    def create(cls, directory: Path, name: str) -> CA:
        directory.mkdir(parents=True, exist_ok=True)
        cert, key = directory / f"{name}.pem", directory / f"{name}.key"
        _openssl(
            "req",
            "-x509",
            *_NEW_P256_KEY,
            "-keyout",
            key.name,
            "-out",
            cert.name,
            "-days",
            "2",
            "-subj",
            f"/O=turboasgi tests/CN={name}",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            cwd=directory,
        )
        return cls(directory, name, cert, key)

    def child(self, name: str) -> CA:
        """An intermediate CA signed by this one."""
        cert, key, csr, ext = (
            self.directory / f"{name}{suffix}" for suffix in (".pem", ".key", ".csr", ".ext")
        )
        ext.write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n")
        _openssl(
            "req",
            "-new",
            *_NEW_P256_KEY,
            "-keyout",
            key.name,
            "-out",
            csr.name,
            "-subj",
            f"/CN={name}",
            cwd=self.directory,
        )
        self._sign(csr, cert, ext)
        return CA(self.directory, name, cert, key)

    def _sign(self, csr: Path, cert: Path, ext: Path) -> None:
        _openssl(
            "x509",
            "-req",
            "-in",
            csr.name,
            "-CA",
            str(self.cert),
            "-CAkey",
            str(self.key),
            "-set_serial",
            str(next(_serials)),
            "-days",
            "2",
            "-out",
            cert.name,
            "-extfile",
            ext.name,
            cwd=self.directory,
        )

    def issue(self, name: str, subject: str, *, server: bool) -> Issued:
        """A certificate for ``subject`` (OpenSSL ``/K=V/...`` form): for a server (localhost and
        127.0.0.1) or for a client."""
        cert, key, csr, ext = (
            self.directory / f"{name}{suffix}" for suffix in (".pem", ".key", ".csr", ".ext")
        )
        usage = "serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1" if server else "clientAuth"
        ext.write_text(
            f"basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage={usage}\n"
        )
        _openssl(
            "req",
            "-new",
            *_NEW_P256_KEY,
            "-keyout",
            key.name,
            "-out",
            csr.name,
            "-subj",
            subject,
            cwd=self.directory,
        )
        self._sign(csr, cert, ext)
        return Issued(cert, key)
