"""Envoy log levels across proxies: spec parsing and validation (`levels`), listings
(`listing`), change with rollback and restore (`change`), `--for` holds (`hold`), the mesh
default (`meshdefault`), and the command core (`command`)."""

from kubectl_mesh.loglevel.levels import LEVELS, LevelSpec, PodPlan, normalize_level, plan

__all__ = ["LEVELS", "LevelSpec", "PodPlan", "normalize_level", "plan"]
