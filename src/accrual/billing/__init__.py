"""The billing center: accounts, bindings, the ledger and settlement (one per currency)."""
