"""The gRPC transport of seenext: thin servicers that validate, convert, call `models`, reply."""
