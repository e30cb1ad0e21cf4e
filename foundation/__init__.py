"""Foundation services (1.x API in Python, 2.0 distributed features)."""
