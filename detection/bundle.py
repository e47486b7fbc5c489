"""Signed bundles of rules and indicators: how they are signed and how an agent checks them.

The national service publishes, for each establishment, a bundle (a JSON object) of the
Sigma rules, YARA rules and indicators of the alerts meant for it. It travels as an envelope:

    {"bundle": {...}, "signature": {"algorithm": "ed25519", "key_id": "<hex>", "value": "<b64>"}}

The signature is Ed25519 over the bundle's canonical bytes (`canonical`): JSON with keys
sorted, no insignificant whitespace, UTF-8, no floats (the service writes none). An agent pins
the service's public key at enrollment and calls `verify_bundle` before using a bundle.

Pure: no HTTP, no database; `collector/` imports it as it is.

Errors (under `detection.errors.VigieDetectionError`):

    BundleError                     the envelope is not a bundle at all
    └── BundleSignatureError        the signature does not match (tampered, or another key)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from detection.errors import VigieDetectionError

ALGORITHM = "ed25519"


class BundleError(VigieDetectionError):
    """An envelope that is not a signed bundle."""


class BundleSignatureError(BundleError):
    """The signature does not verify with the pinned key."""


def canonical(bundle: Mapping[str, Any]) -> bytes:
    """The bytes that are signed: sorted keys, compact separators, UTF-8."""
    try:
        text = json.dumps(
            bundle, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise BundleError(f"bundle is not plain JSON: {exc}") from exc
    return text.encode("utf-8")


def key_id(public_key: Ed25519PublicKey | bytes) -> str:
    """A short name for a public key: the SHA-256 of its 32 raw bytes, first 16 hex digits."""
    raw = public_key if isinstance(public_key, bytes) else raw_public_key(public_key)
    return hashlib.sha256(raw).hexdigest()[:16]


def raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def sign_bundle(bundle: Mapping[str, Any], private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """The envelope of `bundle` signed with `private_key`."""
    signature = private_key.sign(canonical(bundle))
    return {
        "bundle": dict(bundle),
        "signature": {
            "algorithm": ALGORITHM,
            "key_id": key_id(private_key.public_key()),
            "value": base64.b64encode(signature).decode("ascii"),
        },
    }


def public_key_from(value: bytes | str) -> Ed25519PublicKey:
    """A public key from its 32 raw bytes or their base64 text (as the service shows it)."""
    try:
        raw = base64.b64decode(value, validate=True) if isinstance(value, str) else value
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error) as exc:
        raise BundleError(f"not an Ed25519 public key: {exc}") from exc


def verify_bundle(
    envelope: Mapping[str, Any], public_key: Ed25519PublicKey | bytes | str
) -> dict[str, Any]:
    """The bundle of a signed envelope, or `BundleSignatureError` if `public_key` did not sign
    exactly this content."""
    key = public_key if isinstance(public_key, Ed25519PublicKey) else public_key_from(public_key)
    bundle = envelope.get("bundle") if isinstance(envelope, Mapping) else None
    signature = envelope.get("signature") if isinstance(envelope, Mapping) else None
    if not isinstance(bundle, Mapping) or not isinstance(signature, Mapping):
        raise BundleError("an envelope holds a 'bundle' object and a 'signature' object")
    if signature.get("algorithm") != ALGORITHM:
        raise BundleError(f"unknown signature algorithm {signature.get('algorithm')!r}")
    try:
        value = base64.b64decode(str(signature.get("value", "")), validate=True)
    except binascii.Error as exc:
        raise BundleSignatureError(f"signature is not base64: {exc}") from exc
    try:
        key.verify(value, canonical(bundle))
    except InvalidSignature as exc:
        expected = key_id(key)
        if signature.get("key_id") not in (None, expected):
            raise BundleSignatureError(
                f"signed with key {signature.get('key_id')}, not the pinned key {expected}"
            ) from exc
        raise BundleSignatureError("signature does not match the bundle") from exc
    return dict(bundle)
