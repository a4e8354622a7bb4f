"""`kubectl mesh stats TARGET`: a proxy's Envoy stats, as `istioctl experimental envoy-stats`:
the server's stats (`/stats`, `/stats/prometheus`) or the clusters' (`/clusters`)."""
