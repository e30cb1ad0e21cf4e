"""Foundation fabric: a distributed messaging fabric over ZeroMQ."""
