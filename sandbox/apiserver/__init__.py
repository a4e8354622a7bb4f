"""The Kubernetes API double."""
