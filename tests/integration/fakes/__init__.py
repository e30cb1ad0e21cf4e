"""Local servers speaking real service APIs (Consul agent, Kubernetes API) for integration tests."""
