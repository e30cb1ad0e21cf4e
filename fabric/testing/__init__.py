"""fabric.testing."""
