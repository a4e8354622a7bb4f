"""Envoy log levels across proxies: spec parsing and validation (`levels`), listings
(`listing`), change with rollback and restore (`change`), `--for` holds (`hold`: signals and
the countdown; `holdnote`: the note on each pod and the rules for overlapping holds;
`podnotes`: reading and writing the notes; `holding`: a run's holds from start to end, and
abandoned ones), the mesh default (`meshdefault`), and the command core (`command`)."""

from kubectl_mesh.loglevel.levels import LEVELS, LevelSpec, PodPlan, normalize_level, plan

__all__ = ["LEVELS", "LevelSpec", "PodPlan", "normalize_level", "plan"]
