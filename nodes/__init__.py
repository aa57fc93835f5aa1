"""statledger: nodes."""
