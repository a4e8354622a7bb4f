"""`kubectl mesh admin TARGET PATH`: the raw Envoy admin API of a proxy, streamed to stdout.

(`kubectl_mesh.admin` is the typed admin client the other commands use; this package is the
command that exposes the API as it is.)
"""
