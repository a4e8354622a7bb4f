"""What each proxy-config table is: the config_dump section it needs (a `?mask=` or another
admin fetch), its filter, and how the `configdump/` model makes its table. Frozen values built
from flags by the CLI; the command (`command.run`) uses them without knowing which it has."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, ClassVar, Optional

if TYPE_CHECKING:
    from kubectl_mesh.configdump.clusters import ClusterFilter
    from kubectl_mesh.configdump.endpoints import EndpointFilter
    from kubectl_mesh.configdump.listeners import ListenerFilter

# config_dump ?mask= per section: only these top-level fields of each section come back.
MASKS = {
    "clusters": "static_clusters,dynamic_active_clusters,dynamic_warming_clusters",
    "listeners": "static_listeners,dynamic_listeners",
    "routes": "static_route_configs,dynamic_route_configs",
    "secrets": "static_secrets,dynamic_active_secrets,dynamic_warming_secrets",
}

Waiting = Optional[Callable[[], object]]


def _no_filter(name: str) -> Callable[[], object]:
    """The default (match-all) filter of a table, its model imported only when a view of that
    table is made: `routes` does not load the cluster, listener and endpoint models."""
    def make():
        from kubectl_mesh import configdump
        return getattr(configdump, name)()
    return make


class View:
    """One proxy-config table. `name` is the command and the section; `empty` the text of a
    table without rows (istioctl's words), '' for the bare header."""

    name: ClassVar[str]
    empty: ClassVar[str] = ""

    def fetch(self, admin, while_waiting: Waiting = None, notes: list[str] | None = None) -> dict:
        """The admin response the table is made from: by default the masked config dump.
        What the table leaves out, and why, goes into `notes` (warnings for the user)."""
        return admin.config_dump(mask=MASKS[self.name], while_waiting=while_waiting)

    def table(self, dump, fmt: str, comparing: bool = False):
        """The `configdump.Table` of `dump` for output format `fmt`; `comparing` when the
        rows are compared across replicas (--all-pods) whatever the format."""
        raise NotImplementedError

    def tables(self, dump, fmt: str, comparing: bool = False) -> list:
        """[(Table, text when it has no rows)] to write one after the other: this one table."""
        return [(self.table(dump, fmt, comparing), self.empty)]


@dataclass(frozen=True)
class RoutesView(View):
    name: ClassVar[str] = "routes"
    route_name: str = ""  # --name: only this route configuration
    summary: bool = False  # one row per route configuration

    def table(self, dump, fmt: str, comparing: bool = False):
        from kubectl_mesh.configdump import RouteFilter, route_table
        # -o json|yaml prints the selected configs as they are; --all-pods compares rows
        return route_table(dump.routes, RouteFilter(name=self.route_name),
                           verbose=not self.summary, wide=fmt == "wide",
                           rows=fmt in ("short", "wide") or comparing)


@dataclass(frozen=True)
class ClustersView(View):
    name: ClassVar[str] = "clusters"
    filter: ClusterFilter = field(default_factory=_no_filter("ClusterFilter"))

    def table(self, dump, fmt: str, comparing: bool = False):
        from kubectl_mesh.configdump import cluster_table
        return cluster_table(dump.clusters, self.filter, wide=fmt == "wide")


@dataclass(frozen=True)
class ListenersView(View):
    name: ClassVar[str] = "listeners"
    filter: ListenerFilter = field(default_factory=_no_filter("ListenerFilter"))
    verbose: bool = True  # one row per filter chain; False: per listener

    def fetch(self, admin, while_waiting: Waiting = None, notes: list[str] | None = None) -> dict:
        from kubectl_mesh.admin import NotJsonError
        try:
            return super().fetch(admin, while_waiting)
        except NotJsonError as refused:
            # a rejected listener of a type this Envoy does not know: the printable ones
            from kubectl_mesh.proxyconfig.unprintable import printable_listeners
            return printable_listeners(admin, refused, notes)

    def table(self, dump, fmt: str, comparing: bool = False):
        from kubectl_mesh.configdump import listener_table
        return listener_table(dump.listeners, self.filter, verbose=self.verbose,
                              wide=fmt == "wide")


@dataclass(frozen=True)
class EndpointsView(View):
    name: ClassVar[str] = "endpoints"
    filter: EndpointFilter = field(default_factory=_no_filter("EndpointFilter"))

    def fetch(self, admin, while_waiting: Waiting = None, notes: list[str] | None = None) -> dict:
        return admin.clusters(while_waiting=while_waiting)

    def table(self, dump, fmt: str, comparing: bool = False):
        from kubectl_mesh.configdump import endpoint_table
        from kubectl_mesh.configdump.endpoints import eds_table
        # A config dump's EDS section has no outlier state: istioctl's table of it instead.
        build = endpoint_table if dump.kind == "clusters_status" else eds_table
        return build(dump.endpoints, self.filter, wide=fmt == "wide")


@dataclass(frozen=True)
class SecretsView(View):
    name: ClassVar[str] = "secrets"
    empty: ClassVar[str] = "No active or warming secrets found."

    def table(self, dump, fmt: str, comparing: bool = False):
        from kubectl_mesh.configdump import secret_table
        return secret_table(dump.secrets, wide=fmt == "wide")


@dataclass(frozen=True)
class BootstrapView(View):
    """The bootstrap: versions (istioctl's `-o short`), node, admin, xDS servers, static
    resources; `-o json|yaml` the BootstrapConfigDump, as istioctl prints it."""

    name: ClassVar[str] = "bootstrap"

    def fetch(self, admin, while_waiting: Waiting = None, notes: list[str] | None = None) -> dict:
        return admin.config_dump(mask="bootstrap", while_waiting=while_waiting)

    def table(self, dump, fmt: str, comparing: bool = False):
        from kubectl_mesh.configdump.bootstrap import bootstrap_table
        section = dump.section("bootstrap")
        table = bootstrap_table(section)
        # istioctl marshals the BootstrapConfigDump message itself: no `@type` of its own
        return table._replace(data={k: v for k, v in section.items() if k != "@type"})


@dataclass(frozen=True)
class EcdsView(View):
    """Extension configs delivered over ECDS: istioctl's ECDS NAME / TYPE."""

    name: ClassVar[str] = "ecds"

    def fetch(self, admin, while_waiting: Waiting = None, notes: list[str] | None = None) -> dict:
        from kubectl_mesh.errors import AdminError
        try:
            return admin.config_dump(mask="ecds_filters", while_waiting=while_waiting)
        except AdminError as e:
            # Envoy 1.40 answers 400 "FieldMask ecds_filters could not be successfully
            # applied to any configs" when no EcdsConfigDump is there: no extension configs.
            if e.status == 400 and "could not be successfully applied" in e.body:
                return {"configs": []}
            raise

    def table(self, dump, fmt: str, comparing: bool = False):
        from kubectl_mesh.configdump.ecds import ecds_table
        return ecds_table(dump.ecds, wide=fmt == "wide")


@dataclass(frozen=True)
class AllView(View):
    """Every table of one full dump (with EDS) in istioctl's `proxy-config all` order:
    bootstrap, clusters, listeners, routes, secrets, endpoints; `-o json|yaml` the whole dump."""

    name: ClassVar[str] = "all"

    def fetch(self, admin, while_waiting: Waiting = None, notes: list[str] | None = None) -> dict:
        # istioctl's edsPath: the whole dump with the EDS section
        return admin.config_dump(include_eds=True, while_waiting=while_waiting)

    def tables(self, dump, fmt: str, comparing: bool = False) -> list:
        from kubectl_mesh.configdump.common import Table
        if fmt in ("json", "yaml"):
            return [(Table((), [], dump.raw), "")]
        parts = [BootstrapView(), ClustersView(), ListenersView(), RoutesView(), SecretsView()]
        out = [(v.table(dump, fmt, comparing), v.empty) for v in parts]
        if dump.has("endpoints"):
            out.append((EndpointsView().table(dump, fmt, comparing), ""))
        return out
