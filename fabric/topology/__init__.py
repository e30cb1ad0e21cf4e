"""fabric.topology."""
