"""statledger: a verifiable statistics ledger.

The package is the one namespace of the distribution: ``statledger.proofs`` (the math),
``statledger.protocol`` (query specs, statistics, log entries), ``statledger.ledger`` (the
Merkle log), ``statledger.nodes`` (the running parties and the CLI) and
``statledger.verifier`` (certificate verification and log audit).  In the repository these are
the top-level folders ``proofs/``, ``protocol/``, ... and ``statledger/<name>`` is a relative
symbolic link to each of them, so that the source tree, an editable install and a wheel all
import the same ``statledger.*`` names (see docs/architecture.md, "Packaging").

Importing this package is cheap: it loads nothing of the subpackages.  The public Python
API (docs/python-api.md): :func:`local` and :func:`connect` open a :class:`Session` whose
calls return certified :class:`Result` objects; the version, the settings object and
certificate verification.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from statledger.settings import Settings, get_settings

if TYPE_CHECKING:  # pragma: no cover
    from statledger.api import (
        ClippingWarning,
        PartialResultWarning,
        Session,
        SiteError,
        connect,
        local,
    )
    from statledger.results import KaplanMeierResult, RegressionResult, Result
    from statledger.verifier.verify import verify_certificate_file

__version__ = "0.1.0"

__all__ = ["ClippingWarning", "KaplanMeierResult", "PartialResultWarning", "RegressionResult",
           "Result", "Session", "Settings", "SiteError", "__version__", "connect", "get_settings",
           "local", "verify_certificate_file"]

#: the lazily imported public names and their modules
_LAZY = {"connect": "api", "local": "api", "Session": "api", "SiteError": "api",
         "PartialResultWarning": "api", "ClippingWarning": "api", "Result": "results",
         "RegressionResult": "results",
         "KaplanMeierResult": "results", "verify_certificate_file": "verifier.verify"}


def __getattr__(name: str) -> Any:
    # Lazy: `import statledger` must not pay for the API's or the verifier's imports.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"statledger.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'statledger' has no attribute {name!r}")
