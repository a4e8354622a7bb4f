"""Cluster access: kubeconfig loading, a lean API client, target resolution, port-forward.

Nothing heavy is imported here; import the submodules you need.
"""
