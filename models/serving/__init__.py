"""Answering a request: the loaded model, candidate sources, ranking, channel rules, reasons."""
