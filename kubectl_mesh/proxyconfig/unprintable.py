"""The listeners of an Envoy that cannot print its dynamic listeners.

Envoy answers `/config_dump` with one line of text instead of JSON when a listener it holds
carries a config of a type its build does not know – a rejected Istio extension on an upstream
Envoy, the state a version skew leaves (docs/real-istio.md, finding 11). Asking by name does not
help (Envoy 1.40 fails the same with `name_regex`, even one that matches nothing), but the
static listeners (the bootstrap's) print on their own (`mask=static_listeners`), and
`/listeners?format=json` still names every active listener and its address, no config in it.
"""

from __future__ import annotations


def printable_listeners(admin, refused, notes: list[str] | None) -> dict:
    """The listeners section of `admin`'s Envoy with its static listeners only; the active
    dynamic ones it cannot print go into `notes`. `refused`: the NotJsonError of the whole
    dump, raised again when even the static listeners cannot be printed."""
    from kubectl_mesh.admin import NotJsonError

    try:
        dump = admin.config_dump(mask="static_listeners")
    except NotJsonError:
        raise refused from None
    static = {(entry.get("listener") or {}).get("name") for config in dump.get("configs") or []
              for entry in config.get("static_listeners") or []}
    dynamic = [status for status in admin.listeners().get("listener_statuses") or []
               if status.get("name") not in static]
    if notes is not None:
        notes.append(f"Envoy cannot print its dynamic listeners ({refused.said}): the table "
                     f"holds its {len(static)} static listeners only; kubectl mesh sync "
                     "--verify names the configs it rejected")
        if dynamic:
            named = ", ".join(f"{s.get('name')} ({_address(s)})" for s in dynamic)
            notes.append(f"{len(dynamic)} active dynamic listeners not in the table: {named}")
    return dump


def _address(status: dict) -> str:
    socket = (status.get("local_address") or {}).get("socket_address") or {}
    return f"{socket.get('address', '?')}:{socket.get('port_value', '?')}"
