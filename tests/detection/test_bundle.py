"""Signed bundles: what the service signs, an agent verifies; anything else is refused."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from detection.bundle import (
    BundleError,
    BundleSignatureError,
    canonical,
    key_id,
    raw_public_key,
    sign_bundle,
    verify_bundle,
)

BUNDLE: dict[str, Any] = {
    "format": "vigie-bundle/1",
    "version": 7,
    "establishment": "750100125",
    "alerts": [{"id": "a-1", "title": "Rançongiciel", "severity": "high"}],
    "sigma": [{"alert_id": "a-1", "rule": "title: x\n"}],
    "yara": [],
    "indicators": [{"alert_id": "a-1", "type": "ip", "value": "203.0.113.66"}],
}


def test_a_signed_bundle_verifies_with_the_raw_key_or_its_base64() -> None:
    key = Ed25519PrivateKey.generate()
    envelope = sign_bundle(BUNDLE, key)
    raw = raw_public_key(key.public_key())
    assert verify_bundle(envelope, raw) == BUNDLE
    assert verify_bundle(envelope, base64.b64encode(raw).decode()) == BUNDLE
    assert envelope["signature"]["key_id"] == key_id(raw)
    # Key order and whitespace are not part of what is signed: JSON re-encoded still verifies.
    reordered = {"signature": envelope["signature"], "bundle": dict(reversed(BUNDLE.items()))}
    assert verify_bundle(reordered, raw) == BUNDLE


@pytest.mark.parametrize(
    "tamper",
    [
        lambda b: b["indicators"].append({"alert_id": "a-1", "type": "ip", "value": "10.0.0.1"}),
        lambda b: b.update(version=8),
        lambda b: b["sigma"].clear(),
        lambda b: b["alerts"][0].update(title="Rancongiciel"),
    ],
)
def test_a_tampered_bundle_fails(tamper: Any) -> None:
    key = Ed25519PrivateKey.generate()
    envelope = sign_bundle(BUNDLE, key)
    changed = copy.deepcopy(envelope)
    tamper(changed["bundle"])
    with pytest.raises(BundleSignatureError, match="does not match"):
        verify_bundle(changed, raw_public_key(key.public_key()))


def test_another_key_fails() -> None:
    envelope = sign_bundle(BUNDLE, Ed25519PrivateKey.generate())
    pinned = raw_public_key(Ed25519PrivateKey.generate().public_key())
    with pytest.raises(BundleSignatureError, match="not the pinned key"):
        verify_bundle(envelope, pinned)


def test_malformed_envelopes_and_keys_are_refused() -> None:
    key = Ed25519PrivateKey.generate()
    raw = raw_public_key(key.public_key())
    envelope = sign_bundle(BUNDLE, key)
    with pytest.raises(BundleError, match="'bundle' object"):
        verify_bundle({"bundle": BUNDLE}, raw)
    with pytest.raises(BundleError, match="algorithm"):
        verify_bundle({**envelope, "signature": {**envelope["signature"], "algorithm": "rsa"}}, raw)
    with pytest.raises(BundleSignatureError, match="base64"):
        verify_bundle({**envelope, "signature": {**envelope["signature"], "value": "@@"}}, raw)
    with pytest.raises(BundleError, match="Ed25519 public key"):
        verify_bundle(envelope, b"too short")
    with pytest.raises(BundleError, match="plain JSON"):
        canonical({"x": float("nan")})


def test_canonical_form_is_sorted_compact_utf8() -> None:
    assert canonical({"b": 1, "a": ["é", {"d": None, "c": True}]}) == (
        '{"a":["é",{"c":true,"d":null}],"b":1}'.encode()
    )
