"""The command registry: every `kubectl mesh` command, its module and a one-line summary.

This is the one place that knows which commands exist. It must stay cheap to import:
`kubectl mesh --help`, the dispatcher and shell completion read it on every run, so it
imports no command module and nothing outside the standard library.

Contract for a command module `kubectl_mesh.cli.<name>`:
- `main(argv=None, stdout=None, stderr=None) -> int`, normally
  `return common.run(_main, argv, prog=common.prog_name("<name>"), stdout=stdout, stderr=stderr)`;
- `build_parser(prog: str) -> argparse.ArgumentParser` (optional, but shell completion uses
  it for the command's own flags; without it completion offers the common flags only);
- no heavy imports at module level (kubernetes, requests, yaml are imported inside functions).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """One `kubectl mesh <name>` command."""

    name: str
    summary: str
    takes_target: bool = True  # first positional is a pod/workload (shell completion)
    aliases: tuple[str, ...] = ()  # the names istioctl users type (`route`, `log`)
    takes_files: bool = False  # positionals are file names: the shell completes them
    kind_first: bool = False  # `describe pod|service TARGET`: the target follows a kind word
    target_words: tuple[str, ...] = ()  # words the target may also be (`dashboard istiod`)
    takes_admin_path: bool = False  # the positional after the target is an Envoy admin path

    @property
    def module(self) -> str:
        return f"{__name__}.{self.name.replace('-', '_')}"

    @property
    def executable(self) -> str:
        """The separate plugin executable pip installs, e.g. `kubectl-mesh-routes`; a dash in
        the name is an underscore, as kubectl looks it up (`kubectl mesh rootca-compare` runs
        `kubectl-mesh-rootca_compare`: k8s.io/kubectl pkg/cmd/plugin, DefaultPluginHandler)."""
        return f"kubectl-mesh-{self.name.replace('-', '_')}"

    def is_installed(self) -> bool:
        """Whether the command's module can be imported, without importing it."""
        try:
            return importlib.util.find_spec(self.module) is not None
        except (ImportError, ValueError):
            return False


COMMANDS: tuple[Command, ...] = (
    Command("sync", "Show whether each proxy's config is in sync with istiod"),
    Command("routes", "Show a proxy's routes: virtual hosts, matches and destinations",
            aliases=("route",)),
    Command("listeners", "Show a proxy's listeners and filter chains", aliases=("listener",)),
    Command("clusters", "Show a proxy's clusters (upstream services) and their settings",
            aliases=("cluster",)),
    Command("endpoints", "Show a proxy's endpoints and their health", aliases=("endpoint",)),
    Command("secrets", "Show a proxy's certificates and when they expire", aliases=("secret",)),
    Command("loglevel", "Show or change a proxy's log levels", aliases=("log",)),
    Command("sniff", "Capture a pod's traffic to a pcap file or Wireshark"),
    Command("accesslog", "Follow a proxy's access log"),
    Command("analyze", "Find misconfigured Istio objects in the cluster or in files",
            takes_target=False, takes_files=True),
    Command("describe", "Describe a pod or service and the Istio configuration that affects it",
            kind_first=True),
    Command("bootstrap", "Show a proxy's bootstrap: versions, node, admin, xDS servers"),
    Command("all", "Show every table of a proxy's config at once"),
    Command("ecds", "Show a proxy's extension configs (ECDS)"),
    Command("rootca-compare", "Check whether two pods trust the same root CA"),
    Command("stats", "Show a proxy's Envoy stats (server or clusters)"),
    Command("dashboard", "Open a proxy's Envoy admin page (or istiod's ControlZ) in the browser",
            target_words=("istiod", "istiod-debug", "controlz")),
    Command("admin", "Call a proxy's Envoy admin API and print the answer",
            takes_admin_path=True),
)

# Dispatcher-only commands (handled in dispatch.py, no module of their own).
BUILTINS: tuple[tuple[str, str], ...] = (
    ("version", "Print the kubectl-mesh version"),
    ("help", "Show help for a command"),
)


def find_command(name: str) -> Command | None:
    """The registered command called `name`, or None."""
    for command in COMMANDS:
        if name == command.name or name in command.aliases:
            return command
    return None


def command_names() -> tuple[str, ...]:
    return tuple(command.name for command in COMMANDS)
