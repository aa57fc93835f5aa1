"""A schemathesis hook (``SCHEMATHESIS_HOOKS=st_sign_hook``) that signs every request as a
registered party (tests/integration/test_schemathesis.py), so fuzzing reaches the signed
routes' handlers instead of stopping at 401.

The party comes from the environment: ``STATLEDGER_ST_KEY`` (its identity key file),
``STATLEDGER_ST_PARTY`` (its party id), ``STATLEDGER_ST_TARGET`` (the party id of the
service under test).  The signature is made over the final prepared request (method,
path and query as sent, body bytes), through a ``requests`` auth object.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import requests
import schemathesis

from statledger.nodes.auth import sign_request
from statledger.nodes.keys import load_identity_key

_KEY = load_identity_key(Path(os.environ["STATLEDGER_ST_KEY"]))
_PARTY = os.environ["STATLEDGER_ST_PARTY"]
_TARGET = os.environ["STATLEDGER_ST_TARGET"]


class _Sign(requests.auth.AuthBase):
    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        headers = sign_request(_KEY, _PARTY, str(r.method), str(r.path_url), bytes(body),
                               recipient=_TARGET)
        r.headers.update(headers)
        return r


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    kwargs["auth"] = _Sign()
