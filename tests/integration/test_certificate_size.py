"""Certificate v2 size: at most 0.45x the v1 JSON certificate of the same query.

The v1 size is recomputed exactly from the same entries: each entry's readable view in
RFC 8785 JSON with ``"v": 1`` (hex fields; a v1 signature has the same length), base64
inside the v1 JSON document (``indent=1``, hex proof hashes), as v1's ``Certificate.to_json``
wrote it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from statledger.protocol import entries as E
from statledger.protocol.canonical import canonical_bytes
from statledger.verifier.certificate import parse_certificate
from statledger.verifier.verify import verify_certificate

CERTS = ["mean", "crosstab", "dp_sum"]


def v1_size(raw: bytes) -> int:
    cert = parse_certificate(raw)
    doc = {
        "format": "statledger-certificate/v1", "origin": cert.origin, "log_key": cert.log_key,
        "checkpoint": cert.checkpoint,
        "entries": [{"index": e.index,
                     "data": base64.b64encode(canonical_bytes(
                         {**E.Entry.from_bytes(e.data).to_json_obj(), "v": 1})).decode(),
                     "proof": [h.hex() for h in e.proof]} for e in cert.entries],
    }
    return len((json.dumps(doc, indent=1) + "\n").encode())


@pytest.mark.parametrize("name", CERTS)
def test_v2_is_at_most_045_of_v1(verifier_run: Any, name: str) -> None:
    raw = verifier_run.cert(name)
    assert verify_certificate(raw).valid
    ratio = len(raw) / v1_size(raw)
    assert ratio <= 0.45, f"{name}: {len(raw)} bytes = {ratio:.3f} of v1"
