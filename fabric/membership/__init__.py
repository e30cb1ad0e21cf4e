"""fabric.membership."""
