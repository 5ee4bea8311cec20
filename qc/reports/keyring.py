"""The plant's Ed25519 signing keys in the instance folder.

    INSTANCE/signing_key.pem                 the current private key (PKCS#8 PEM, mode 0600)
    INSTANCE/public_keys/<fingerprint>.pem   every public key ever used, retired ones included

A key is created on first start (like the secret key); `qc keys rotate` makes a new one and keeps
the old public key, so documents signed before the rotation still verify.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

log = logging.getLogger(__name__)

PRIVATE_FILE = "signing_key.pem"
PUBLIC_DIR = "public_keys"


def raw_public(key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of a public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw public key, hex: what customers compare (docs/reports.md)."""
    return hashlib.sha256(raw_public(key)).hexdigest()


def public_pem(key: Ed25519PublicKey) -> str:
    """SubjectPublicKeyInfo PEM (what `openssl pkey -pubin` reads)."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_public(data: bytes) -> Ed25519PublicKey:
    """A public key from PEM; refuses anything but Ed25519."""
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


@dataclass(frozen=True)
class SigningKey:
    """The current private key and its fingerprint."""

    private: Ed25519PrivateKey
    fingerprint: str

    @property
    def public(self) -> Ed25519PublicKey:
        """Its public key."""
        return self.private.public_key()


class Keyring:
    """The signing keys kept in one instance folder."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    @property
    def private_path(self) -> Path:
        """Where the current private key lives."""
        return self.folder / PRIVATE_FILE

    def ensure(self) -> SigningKey:
        """The current key, created (mode 0600) if there is none yet."""
        if not self.private_path.exists():
            self._install(Ed25519PrivateKey.generate(), replace=False)
        return self.current()

    def current(self) -> SigningKey:
        """The current key; raises with what to do when there is none."""
        try:
            data = self.private_path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(
                f"no signing key in {self.folder}: start the service once or run `qc keys rotate`"
            ) from None
        if self.private_path.stat().st_mode & 0o077:
            log.warning("%s is readable by others; chmod 600 it", self.private_path)
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{self.private_path} is not an Ed25519 private key")
        return SigningKey(key, fingerprint(key.public_key()))

    def rotate(self) -> tuple[str | None, SigningKey]:
        """Replace the current key by a new one; the old public key stays. (old fp, new key)"""
        old = self.current().fingerprint if self.private_path.exists() else None
        self._install(Ed25519PrivateKey.generate(), replace=True)
        new = self.current()
        log.info("signing key rotated: %s -> %s", old, new.fingerprint)
        return old, new

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        """Every public key this plant has signed with, by fingerprint."""
        keys = {}
        for path in sorted((self.folder / PUBLIC_DIR).glob("*.pem")):
            key = load_public(path.read_bytes())
            keys[fingerprint(key)] = key
        if self.private_path.exists():
            current = self.current()
            keys[current.fingerprint] = current.public
        return keys

    def _install(self, key: Ed25519PrivateKey, replace: bool) -> None:
        """Write the public key, then the private one atomically (0600; first writer wins)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        public_dir = self.folder / PUBLIC_DIR
        public_dir.mkdir(exist_ok=True)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".signing_key-")  # mode 0600
        public = key.public_key()
        public_path = public_dir / f"{fingerprint(public)}.pem"
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
            if replace:
                public_path.write_text(public_pem(public))  # before the key that needs it
                os.replace(tmp, self.private_path)
                return
            try:
                os.link(tmp, self.private_path)  # another worker may have won: keep theirs
            except FileExistsError:
                return
            public_path.write_text(public_pem(public))
            log.info("generated a signing key in %s", self.private_path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
