"""A small Istio-like control plane for the sandbox.

Real Envoy proxies connect to it over gRPC ADS (CDS, EDS, LDS, RDS); it translates Kubernetes
objects (Services, Pods, VirtualServices, DestinationRules, Gateways) into Istio-shaped Envoy
resources and serves istiod's debug endpoints (`/debug/syncz`, `/debug/config_dump`) on 15014.

Modules: `mesh` (an index over the object set), `translate` + `clusters`/`listeners`/`routes`
(objects → Envoy resources as proto-JSON dicts), `resources` (dicts → protobuf, versions),
`ads` (the ADS server and per-proxy sync state), `debug` (HTTP debug server), `source`
(kube API list+watch or a YAML file), `bootstrap` (Envoy bootstraps), `__main__` (CLI).
"""
