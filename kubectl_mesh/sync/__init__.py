"""`kubectl mesh sync`: is each proxy's config in sync with istiod?

- `istiod`: find istiod pods, one port-forward each, `/debug/syncz` and `/debug/config_dump`;
- `scope`: which proxies a run is about (TARGET, `-n`, `-A`);
- `verify`/`probe`: ask each proxy's own Envoy what istiod cannot see;
- `diff`: istiod's view of one proxy against the proxy's config dump;
- `wait`: poll until everything selected is SYNCED;
- `command.run(SyncOptions, stdout, stderr)`: the whole command, used by `cli/sync.py`.
The syncz model and table writers live in `kubectl_mesh.syncz`.
"""

from kubectl_mesh.sync.options import SyncOptions

__all__ = ["SyncOptions"]
