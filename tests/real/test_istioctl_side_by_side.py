"""`kubectl mesh` beside the real `istioctl` (built from istio.io/istio by `make
real-components`) on the same sandbox mesh: the proxy-config tables must hold the same rows.

The one documented difference: istioctl pads its last column with spaces (Go's tabwriter);
ours ends each line at its last character. Lines are compared with trailing spaces removed.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from sandbox.real.controlplane import locate_binaries

TABLES = ("routes", "clusters", "listeners", "endpoints", "listeners --verbose=false", "secrets")


@pytest.fixture(scope="module")
def istioctl():
    return str(locate_binaries() / "istioctl")


@pytest.fixture(scope="module")
def proxies(sandbox):
    gateway = sandbox.pods("istio-system", "istio=ingressgateway")[0]["metadata"]["name"]
    sidecar = sandbox.pods("istioinaction", "app=catalog,version=v1")[0]["metadata"]["name"]
    return {"gateway": (gateway, "istio-system"), "sidecar": (sidecar, "istioinaction")}


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("proxy", ["gateway", "sidecar"])
def test_proxy_config_tables_have_the_same_rows(sandbox, mesh, istioctl, proxies, proxy, table):
    pod, namespace = proxies[proxy]
    table, *flags = table.split()
    theirs = subprocess.run([istioctl, "proxy-config", table, pod, "-n", namespace, *flags],
                            capture_output=True, text=True, timeout=60, env=sandbox.env())
    ours = mesh(table, pod, "-n", namespace, *flags)
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    assert lines(theirs.stdout)  # something to compare
    assert lines(ours.stdout) == lines(theirs.stdout)


# ---- bootstrap, ecds, all, rootca-compare, envoy-stats ----------------------------------------


def istioctl_run(sandbox, istioctl, *args):
    return subprocess.run([istioctl, *args], capture_output=True, text=True, timeout=60,
                          env=sandbox.env())


def snake_keys(value):
    """protojson's camelCase keys (istioctl re-marshals the bootstrap) as Envoy's snake_case."""
    from kubectl_mesh.configdump.keys import snake
    if isinstance(value, dict):
        return {snake(k): snake_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snake_keys(v) for v in value]
    return value


@pytest.mark.parametrize("proxy", ["gateway", "sidecar"])
def test_bootstrap_versions_and_dump(sandbox, mesh, istioctl, proxies, proxy):
    """-o short: istioctl's version lines are our first lines (our label column is as wide as
    our longest label, so spaces are compared collapsed); the JSON dump is the same document
    (istioctl's is protojson's camelCase below `bootstrap.node`)."""
    pod, namespace = proxies[proxy]
    theirs = istioctl_run(sandbox, istioctl, "proxy-config", "bootstrap", pod, "-n", namespace,
                          "-o", "short")
    ours = mesh("bootstrap", pod, "-n", namespace)
    assert theirs.returncode == 0 and ours.returncode == 0, (theirs.stderr, ours.stderr)
    words = [line.split() for line in ours.stdout.splitlines()]
    their_words = [line.split() for line in theirs.stdout.splitlines()]
    assert their_words and words[:len(their_words)] == their_words
    theirs = istioctl_run(sandbox, istioctl, "proxy-config", "bootstrap", pod, "-n", namespace)
    ours = mesh("bootstrap", pod, "-n", namespace, "-o", "json")
    assert snake_keys(json.loads(theirs.stdout)) == snake_keys(json.loads(ours.stdout))


def test_ecds_without_extension_configs(sandbox, mesh, istioctl, proxies):
    """Documented difference: a proxy without ECDS has no EcdsConfigDump; istioctl fails on
    that (exit 1), we show the empty table. The fact is the same: no extension configs."""
    pod, namespace = proxies["sidecar"]
    theirs = istioctl_run(sandbox, istioctl, "proxy-config", "ecds", pod, "-n", namespace)
    ours = mesh("ecds", pod, "-n", namespace)
    assert theirs.returncode == 1
    assert "config dump has no configuration type type.googleapis.com/envoy.admin.v3." \
           "EcdsConfigDump" in theirs.stderr
    assert (ours.returncode, ours.stdout.split()) == (0, ["ECDS", "NAME", "TYPE"])


KINDS = re.compile(r"(?<!\S)(cluster|listener|route|endpoint)/")


@pytest.mark.parametrize("proxy", ["gateway", "sidecar"])
def test_all_has_the_same_tables(sandbox, mesh, istioctl, proxies, proxy):
    """istioctl's `all` names each row with its kind (`cluster/…`, `listener/…`: an extra
    NAME column for clusters and listeners, a prefix for routes and endpoints); we leave
    that out (documented). Otherwise section by section the same cells; the bootstrap section
    holds istioctl's version lines. `-o json` is the same dump."""
    pod, namespace = proxies[proxy]
    theirs = istioctl_run(sandbox, istioctl, "proxy-config", "all", pod, "-n", namespace)
    ours = mesh("all", pod, "-n", namespace)
    assert theirs.returncode == 0 and ours.returncode == 0, (theirs.stderr, ours.stderr)
    their_sections = theirs.stdout.strip("\n").split("\n\n")
    our_sections = ours.stdout.strip("\n").split("\n\n")
    assert len(their_sections) == len(our_sections) == 6
    boot_theirs = [line.split() for line in their_sections[0].splitlines()]
    assert [line.split() for line in our_sections[0].splitlines()][:len(boot_theirs)] == boot_theirs
    for index, (t, o) in enumerate(zip(their_sections[1:], our_sections[1:]), start=1):
        extra_name = index in (1, 2)  # clusters, listeners
        rows = [line.split()[1 if extra_name else 0:] for line in t.splitlines()]
        # an unnamed route config (the bootstrap's static `backend` ones) is `route/` alone
        rows = [[c for c in (KINDS.sub("", cell) for cell in row) if c] for row in rows]
        assert rows == [line.split() for line in o.splitlines()], index
    theirs = istioctl_run(sandbox, istioctl, "proxy-config", "all", pod, "-n", namespace,
                          "-o", "json")
    ours = mesh("all", pod, "-n", namespace, "-o", "json")
    kinds = [[c["@type"] for c in json.loads(out)["configs"]] for out in (theirs.stdout,
                                                                            ours.stdout)]
    assert kinds[0] == kinds[1] and any("EndpointsConfigDump" in k for k in kinds[0])


def test_rootca_compare_fails_alike(sandbox, mesh, istioctl, proxies):
    """The sandbox's istiod issues no certificates: neither finds a ROOTCA (istioctl: exit 1,
    ours: 3, not found); with one pod both refuse with the same words (istioctl 1, ours 2)."""
    (gw, gw_ns), (sc, sc_ns) = proxies["gateway"], proxies["sidecar"]
    theirs = istioctl_run(sandbox, istioctl, "proxy-config", "rootca-compare", f"{sc}.{sc_ns}",
                          f"{gw}.{gw_ns}")
    ours = mesh("rootca-compare", f"{sc}.{sc_ns}", f"{gw}.{gw_ns}")
    assert theirs.returncode == 1 and "cannot find ROOTCA from secret" in theirs.stderr
    assert ours.returncode == 3 and f"{sc}.{sc_ns} has no ROOTCA secret" in ours.stderr
    theirs = istioctl_run(sandbox, istioctl, "proxy-config", "rootca-compare", f"{sc}.{sc_ns}")
    ours = mesh("rootca-compare", f"{sc}.{sc_ns}")
    words = "rootca-compare requires 2 pods as an argument"
    assert (theirs.returncode, ours.returncode) == (1, 2)
    assert words in theirs.stderr and words in ours.stderr


def stat_names(text: str) -> list[str]:
    """Names of `name: value` lines, without istioctl's `The result of pod X:` heading."""
    return [line.split(":", 1)[0] for line in text.splitlines()
            if line and not line.startswith("The result of pod")]


@pytest.mark.parametrize("output", ["short", "json", "prom"])
def test_envoy_stats_has_the_same_stats(sandbox, mesh, istioctl, proxies, output):
    """`istioctl x envoy-stats` heads its output with `The result of pod X:` and indents JSON
    by 4; we print the data alone (documented). Counter values move between the two calls,
    so the stat names (Prometheus: the metric families) are compared, and gauges that stand
    still: the number of clusters and listeners."""
    pod, namespace = proxies["sidecar"]
    theirs = istioctl_run(sandbox, istioctl, "x", "envoy-stats", pod, "-n", namespace,
                          "-o", output)
    ours = mesh("stats", pod, "-n", namespace, "-o", output)
    assert theirs.returncode == 0 and ours.returncode == 0, (theirs.stderr, ours.stderr)
    if output == "json":
        body = theirs.stdout.split(f"The result of pod {pod}:", 1)[1]
        theirs_stats, ours_stats = json.loads(body)["stats"], json.loads(ours.stdout)["stats"]
        assert [s.get("name") for s in theirs_stats] == [s.get("name") for s in ours_stats]
        values = [{s["name"]: s.get("value") for s in stats if "name" in s}
                  for stats in (theirs_stats, ours_stats)]
        for gauge in ("cluster_manager.active_clusters", "listener_manager.total_listeners_active"):
            assert values[0][gauge] == values[1][gauge]
    elif output == "prom":
        families = [sorted(line for line in out.splitlines() if line.startswith("# TYPE"))
                    for out in (theirs.stdout, ours.stdout)]
        assert families[0] and families[0] == families[1]
    else:
        assert stat_names(theirs.stdout) == stat_names(ours.stdout)


def test_envoy_stats_of_clusters(sandbox, mesh, istioctl, proxies):
    pod, namespace = proxies["gateway"]
    theirs = istioctl_run(sandbox, istioctl, "x", "envoy-stats", pod, "-n", namespace,
                          "--type", "clusters")
    ours = mesh("stats", pod, "-n", namespace, "--type", "clusters")
    assert theirs.returncode == 0 and ours.returncode == 0, (theirs.stderr, ours.stderr)
    fields = [sorted({"::".join(line.split("::")[:-1]) for line in out.splitlines() if "::" in line})
              for out in (theirs.stdout, ours.stdout)]
    assert fields[0] and fields[0] == fields[1]
