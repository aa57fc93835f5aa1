"""The one error tree of statledger (docs/architecture.md, "Errors").

Every error raised on purpose by statledger derives from :class:`StatledgerError`:

* :class:`MalformedError` -- bytes, JSON or text that do not decode canonically (wrong length,
  point off the curve, scalar >= order, trailing bytes, wrong types).  Nothing was checked
  yet: the input is not even a well-formed statement or proof.
* :class:`VerificationError` -- a well-formed object whose equation or rule fails.  It names
  the numbered verification ``step`` (``"step 5"``), the ``reason`` and the ``party`` blamed.
* :class:`DecryptionError` -- a discrete logarithm outside the declared bound: decryption is
  exact or raises, never silently wrong.
* :class:`PolicyError` -- a query or request refused by a party's policy (data owner policy,
  privacy budget, minimum cell size, node that refuses to decrypt a single submission).
* :class:`ProtocolError` -- an event that is out of order or duplicated in the query state
  machine.
"""

from __future__ import annotations

__all__ = [
    "StatledgerError",
    "MalformedError",
    "VerificationError",
    "DecryptionError",
    "PolicyError",
    "ProtocolError",
]


class StatledgerError(Exception):
    """Root of every error statledger raises on purpose."""


class MalformedError(StatledgerError, ValueError):
    """Input that does not decode canonically (bytes, JSON, text)."""


class VerificationError(StatledgerError):
    """A check failed.

    ``step`` is the numbered step of the procedure that failed (e.g. ``"step 5"`` or
    ``"range-proof"``), ``party`` who is blamed (a provider or node id), ``reason`` the
    human explanation.  ``str(err)`` contains all three so ``pytest.raises(..., match=...)``
    can pin any of them.
    """

    def __init__(self, reason: str, *, step: str | None = None, party: str | None = None):
        self.reason = reason
        self.step = step
        self.party = party
        parts = []
        if step is not None:
            parts.append(step)
        if party is not None:
            parts.append(f"party {party}")
        prefix = " / ".join(parts)
        super().__init__(f"{prefix}: {reason}" if prefix else reason)


class DecryptionError(StatledgerError):
    """A plaintext outside the bound of the discrete-log search (never a silent wrong value)."""


class PolicyError(StatledgerError):
    """A request refused by policy; the message says which rule and why."""


class ProtocolError(StatledgerError):
    """An out-of-order, duplicate or otherwise invalid protocol event."""
