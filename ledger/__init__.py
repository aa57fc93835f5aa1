"""statledger: ledger -- the append-only RFC 9162 log, C2SP checkpoints and witnesses.

See docs/ledger.md.  Submodules: :mod:`ledger.merkle`, :mod:`ledger.note`,
:mod:`ledger.checkpoint`, :mod:`ledger.store`, :mod:`ledger.witness`, :mod:`ledger.replay`,
:mod:`ledger.bundle`.
"""
