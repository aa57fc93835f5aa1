"""statledger proofs: the math, no I/O.

secp256k1 group (:mod:`statledger.proofs.group`), Fiat--Shamir transcript
(:mod:`statledger.proofs.transcript`),
exponential ElGamal (:mod:`statledger.proofs.elgamal`), sigma proofs
(:mod:`statledger.proofs.sigma`), range proofs
(:mod:`statledger.proofs.rangeproof`, built on :mod:`statledger.proofs.msm`,
:mod:`statledger.proofs.generators` and :mod:`statledger.proofs.ipa`) and Ed25519 signatures
(:mod:`statledger.proofs.signatures`).
Verifiable re-encryption shuffle (Terelius--Wikstrom): :mod:`statledger.proofs.shuffle`.
See ``docs/notes/`` for the notation and one note per proof.
"""
