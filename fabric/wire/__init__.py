"""fabric.wire."""
