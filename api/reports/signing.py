"""The key that signs reports' manifests: `report-signing.key` in the data directory, made like
the bundle key (api/alerts/signing.py) but kept apart from it, so that a signature that agents
trust as a rule bundle can never be lifted from a report, nor the other way round."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from api.alerts.signing import load_or_create_key
from detection.bundle import ALGORITHM, key_id, raw_public_key

KEY_FILE = "report-signing.key"


@dataclass(frozen=True)
class ReportSigner:
    private_key: Ed25519PrivateKey

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> ReportSigner:
        return cls(load_or_create_key(data_dir / KEY_FILE))

    def sign(self, document: bytes) -> bytes:
        """The signature in base64, one line."""
        return base64.b64encode(self.private_key.sign(document)) + b"\n"

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        )

    def identity(self) -> dict[str, str]:
        raw = raw_public_key(self.private_key.public_key())
        return {
            "algorithm": ALGORITHM,
            "key_id": key_id(raw),
            "public_key": base64.b64encode(raw).decode("ascii"),
        }
