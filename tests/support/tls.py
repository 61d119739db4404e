"""A throwaway PKI made with ``openssl`` (and ``keytool`` for the broker's truststore).

A CA and the broker certificate it signed for localhost and 127.0.0.1, a second
CA that signed nothing the broker trusts, and client certificates from each:
what the TLS tests and the secure-shipping benchmark need.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

USER, PASSWORD = "alice", "alice-Secret-4711"
KEYSTORE_PASSWORD = "broker-store-pw"  # noqa: S105 - a throwaway keystore the test makes


@dataclass(frozen=True)
class Pki:
    ca: Path
    keystore: Path
    other_ca: Path  # a CA that did not sign the broker: trusting only it must fail
    truststore: Path  # the broker trusts client certificates signed by ca
    client: tuple[Path, Path]  # client certificate and key signed by ca
    rogue_client: tuple[Path, Path]  # signed by other-ca


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_ca(d: Path, name: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN=fireplot test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip


def make_pki(d: Path) -> Pki:
    """A CA, a broker certificate it signed for localhost and 127.0.0.1 (PKCS12 keystore), another CA."""
    _make_ca(d, "ca")
    _make_ca(d, "other-ca")
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr",
        "-subj", "/CN=localhost",
        cwd=d,
    )  # fmt: skip
    (d / "san.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _openssl(
        "x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "san.cnf", "-out", "broker.pem",
        cwd=d,
    )  # fmt: skip
    # The broker (Java) reads its certificate and key from a PKCS12 keystore.
    _openssl(
        "pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key", "-certfile", "ca.pem",
        "-name", "broker", "-out", "broker.p12", "-passout", f"pass:{KEYSTORE_PASSWORD}",
        cwd=d,
    )  # fmt: skip
    (d / "client.cnf").write_text("extendedKeyUsage=clientAuth\n")
    for name, ca in (("client", "ca"), ("rogue-client", "other-ca")):
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}",
            cwd=d,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "2", "-extfile", "client.cnf", "-out", f"{name}.pem",
            cwd=d,
        )  # fmt: skip
    subprocess.run(
        ["keytool", "-importcert", "-noprompt", "-alias", "ca", "-file", "ca.pem", "-keystore",
         "truststore.p12", "-storetype", "PKCS12", "-storepass", KEYSTORE_PASSWORD],
        cwd=d, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return Pki(
        d / "ca.pem",
        d / "broker.p12",
        d / "other-ca.pem",
        d / "truststore.p12",
        (d / "client.pem", d / "client.key"),
        (d / "rogue-client.pem", d / "rogue-client.key"),
    )
