"""The service's Ed25519 key pair for bundles, kept in the data directory.

`bundle-signing.key` (PKCS#8 PEM, mode 0600) is made on the first start; every later start,
and every other process on the same data directory, reads the same key. Created with
O_EXCL so that two processes starting at once cannot each write a different key.
"""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from detection.bundle import ALGORITHM, key_id, raw_public_key, sign_bundle

KEY_FILE = "bundle-signing.key"


@dataclass(frozen=True)
class BundleSigner:
    private_key: Ed25519PrivateKey

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> BundleSigner:
        return cls(load_or_create_key(data_dir / KEY_FILE))

    def sign(self, bundle: dict[str, Any]) -> dict[str, Any]:
        return sign_bundle(bundle, self.private_key)

    def public(self) -> dict[str, str]:
        """What agents pin: the raw key in base64, its PEM, its id."""
        public = self.private_key.public_key()
        raw = raw_public_key(public)
        pem = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        return {
            "algorithm": ALGORITHM,
            "key_id": key_id(raw),
            "public_key": base64.b64encode(raw).decode("ascii"),
            "pem": pem.decode("ascii"),
        }


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 key kept at `path`, made (0600, once, whoever comes first) if missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
        out.flush()
        os.fsync(out.fileno())
    return key


def _read(path: Path) -> Ed25519PrivateKey:
    pem = path.read_bytes()
    if not pem:  # another process is writing it this very moment
        for _ in range(50):
            time.sleep(0.02)
            pem = path.read_bytes()
            if pem:
                break
    key = load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key
