"""A party's pinned consortium: the trust file named by its config (``trust = ...``).

Every party -- the ledger included -- acts only for the consortium it pins: the ledger writes
that genesis as entry 0 of its log (and refuses to serve a log that starts with another), a
compute node, a data owner and a querier check that the log they read starts with it
(verification step 6 with ``pinned``).  The file is the ``statledger-trust/v2`` document that
``statledger consortium export-trust`` writes (docs/consortium.md).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from statledger.proofs.errors import MalformedError, PolicyError, VerificationError

if TYPE_CHECKING:  # pragma: no cover
    from statledger.nodes.config import AnyConfig
    from statledger.protocol.consortium import SignedGenesis

__all__ = ["pinned_genesis", "pinned_id"]


@lru_cache(maxsize=16)
def _load(path: Path, mtime_ns: int) -> SignedGenesis:
    from statledger.protocol.consortium import parse_trust_document

    try:
        return parse_trust_document(path.read_bytes())
    except OSError as exc:
        raise PolicyError(f"trust file {path}: cannot read ({exc.strerror})") from None
    except (MalformedError, VerificationError) as exc:
        raise PolicyError(f"trust file {path}: {exc}") from None


def pinned_genesis(config: AnyConfig) -> SignedGenesis:
    """The signed genesis this party pins (every founding signature checked); PolicyError
    naming the party when its config pins none or the file is not a valid trust file."""
    if config.trust is None:
        raise PolicyError(f"{config.party_id} pins no consortium (no `trust` file in its "
                          "config): it acts for nobody it has not verified")
    path = Path(config.trust)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise PolicyError(f"trust file {path}: cannot read ({exc.strerror})") from None
    return _load(path, mtime)


def pinned_id(config: AnyConfig) -> str:
    """The consortium id this party pins."""
    cid: str = pinned_genesis(config).genesis.consortium_id
    return cid
