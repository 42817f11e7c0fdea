"""Consent and the rights of the customer: one consent decision, erasure, access."""
