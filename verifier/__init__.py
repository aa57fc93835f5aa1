"""statledger: verifier."""
