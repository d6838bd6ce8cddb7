"""The on-chip agent (Attester): key store, timed rounds, proofs, outbox and licence."""
