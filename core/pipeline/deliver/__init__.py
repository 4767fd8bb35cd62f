"""Deliver: each sink gets what its ledger says it lacks, exactly once."""
