"""Identifiers, the identity graph, PII normalising and hashing, customer attributes."""
