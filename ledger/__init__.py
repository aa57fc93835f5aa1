"""statledger: ledger -- the append-only RFC 9162 log, C2SP checkpoints and witnesses.

See docs/ledger.md.  Submodules: :mod:`statledger.ledger.merkle`, :mod:`statledger.ledger.note`,
:mod:`statledger.ledger.checkpoint`, :mod:`statledger.ledger.store`,
:mod:`statledger.ledger.witness`, :mod:`statledger.ledger.replay`,
:mod:`statledger.ledger.bundle`.
"""
