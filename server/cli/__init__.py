"""The `seenext` command line."""
