"""Loading landing files into raw.* with a quarantine and a load ledger."""
