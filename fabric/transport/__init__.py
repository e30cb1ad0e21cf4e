"""fabric.transport."""
