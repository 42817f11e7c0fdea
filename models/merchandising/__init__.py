"""Merchandising (issue 12): business rules in CEL, diversity, applied to every Recommend."""
