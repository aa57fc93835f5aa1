"""statledger proofs: the math, no I/O.

secp256k1 group (:mod:`proofs.group`), Fiat--Shamir transcript (:mod:`proofs.transcript`),
exponential ElGamal (:mod:`proofs.elgamal`), sigma proofs (:mod:`proofs.sigma`), range proofs
(:mod:`proofs.rangeproof`) and Ed25519 signatures (:mod:`proofs.signatures`).
See ``docs/notes/`` for the notation and one note per proof.
"""
