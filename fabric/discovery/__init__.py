"""fabric.discovery."""
