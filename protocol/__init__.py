"""statledger: protocol."""
