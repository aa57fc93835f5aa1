"""statledger: ledger."""
