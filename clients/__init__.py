"""Thin per-channel clients over the generated stubs: web shop, e-mail system, POS terminal."""
