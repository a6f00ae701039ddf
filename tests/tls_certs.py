"""Throwaway TLS certificates for tests, made with the openssl command line (nothing downloaded).

``make_pki(dir, ips=...)`` writes a CA, a server certificate for the given IPs (and ``localhost``) that Redis also
uses as its client certificate towards other Redis processes (replication, cluster bus), a client certificate for
streamlb, and a second, unrelated CA (to prove that verification really happens).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path

    def query(self, client_cert: bool = True) -> str:
        """URL query parameters for streamlb (events.stream): CA verification and the client certificate."""
        q = f"ssl_ca_certs={self.ca}"
        if client_cert:
            q += f"&ssl_certfile={self.client_cert}&ssl_keyfile={self.client_key}"
        return q

    def redis_args(self) -> list[str]:
        return ["--tls-cert-file", str(self.server_cert), "--tls-key-file", str(self.server_key),
                "--tls-ca-cert-file", str(self.ca), "--tls-auth-clients", "yes"]


def _run(*args: str) -> None:
    subprocess.run([OPENSSL, *args], check=True, capture_output=True, timeout=60)


def _key(path: Path) -> None:
    _run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", str(path))


def _ca(d: Path, name: str) -> tuple[Path, Path]:
    key, crt = d / f"{name}.key", d / f"{name}.crt"
    _key(key)
    _run("req", "-x509", "-new", "-key", str(key), "-out", str(crt), "-days", "2", "-subj", f"/CN={name}",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return key, crt


def _leaf(d: Path, name: str, ca_key: Path, ca_crt: Path, ext: str) -> tuple[Path, Path]:
    key, csr, crt, extf = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.crt", d / f"{name}.ext"
    _key(key)
    _run("req", "-new", "-key", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    extf.write_text(ext)
    _run("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
         "-out", str(crt), "-days", "2", "-extfile", str(extf))
    return crt, key


def make_pki(d: Path, ips: tuple[str, ...] = ("127.0.0.1",)) -> Pki:
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = _ca(d, "test-ca")
    _, other = _ca(d, "unrelated-ca")
    san = ",".join(["DNS:localhost", *(f"IP:{ip}" for ip in ips)])
    scrt, skey = _leaf(d, "redis-server", ca_key, ca_crt, f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n")
    ccrt, ckey = _leaf(d, "streamlb-client", ca_key, ca_crt,
                       "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    for p in (skey, ckey):
        p.chmod(0o600)
    return Pki(ca_crt, scrt, skey, ccrt, ckey, other)
