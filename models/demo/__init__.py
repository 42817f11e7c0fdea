"""The demo retailer and the traffic simulator (not the domain: they call it from outside)."""
