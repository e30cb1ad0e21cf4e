"""``foundation-node``: the operator command line (click). Parses, calls the library, renders."""
