"""A local mesh for tests and demos: a Kubernetes API double, pods as local processes,
real Envoy proxies and a small xDS control plane."""
