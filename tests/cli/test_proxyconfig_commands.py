"""`kubectl mesh bootstrap|ecds|all|rootca-compare|stats` end to end: real kubectl, the
sandbox's default scenario, real Envoys behind a port-forward."""

from __future__ import annotations

import json

import yaml

from sandbox.testing import PodPort

GW = ("deploy/istio-ingressgateway", "-n", "istio-system")
CATALOG = ("deploy/catalog", "-n", "istioinaction")


def labelled(stdout: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        label, _, value = line.partition(":")
        out.setdefault(label, []).append(value.strip())
    return out


def test_bootstrap_of_a_sidecar_names_its_node_admin_and_xds_server(mesh, sandbox):
    pod = sandbox.pods("istioinaction", "app=catalog,version=v1")[0]
    name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
    out = mesh("bootstrap", f"pod/{name}", "-n", "istioinaction")
    assert (out.returncode, out.stderr) == (0, "")
    rows = labelled(out.stdout)
    assert rows["Node ID"] == [f"sidecar~{ip}~{name}.istioinaction~istioinaction.svc.cluster.local"]
    assert rows["Cluster"] == ["catalog.istioinaction"]
    # the pod's own Envoy's admin address: its pod IP, or 127.0.0.1 in a pod network namespace
    assert rows["Admin"] == [f"{PodPort(pod, 15000).host}:15000"]
    assert rows["Envoy Version"][0].startswith("1.40.0/")
    data = json.loads(mesh("bootstrap", f"pod/{name}", "-n", "istioinaction", "-o", "json").stdout)
    boot = data["bootstrap"]
    assert rows["Istio Version"] == [boot["node"]["metadata"]["ISTIO_VERSION"]]
    (xds,) = [c for c in boot["static_resources"]["clusters"] if c["name"] == "xds-grpc"]
    address = xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    # real Istio: a pipe to pilot-agent's XDS proxy; the sandbox (no pilot-agent): istiod
    where = address["pipe"]["path"] if "pipe" in address else \
        f"{address['socket_address']['address']}:{address['socket_address']['port_value']}"
    assert xds["alt_stat_name"] == "xds-grpc;"
    assert rows["Static Clusters"] == ["prometheus_stats, agent, sds-grpc, xds-grpc"]
    assert rows["Static Listeners"] == ["0.0.0.0_15090, 0.0.0.0_15021"]
    # real Istio's bootstrap: DELTA_GRPC (ISTIO_DELTA_XDS defaults to true)
    assert rows["xDS Server"] == [f"ADS DELTA_GRPC xds-grpc {where}"]
    as_yaml = yaml.safe_load(mesh("bootstrap", f"pod/{name}", "-n", "istioinaction",
                                  "-o", "yaml").stdout)
    assert as_yaml["bootstrap"]["node"]["id"] == boot["node"]["id"]


def test_ecds_without_extension_configs(mesh):
    out = mesh("ecds", *GW)
    assert (out.returncode, out.stdout.split(), out.stderr) == (0, ["ECDS", "NAME", "TYPE"], "")
    data = mesh("ecds", *GW, "-o", "json")
    assert (data.returncode, json.loads(data.stdout)) == (0, [])


def test_all_is_every_single_table(mesh):
    out = mesh("all", *CATALOG)
    assert out.returncode == 0, out.stderr
    sections = out.stdout.split("\n\n")
    singles = [mesh(command, *CATALOG).stdout.strip("\n")
               for command in ("bootstrap", "clusters", "listeners", "routes", "secrets")]
    assert [s.strip("\n") for s in sections[:5]] == singles
    # the endpoints of the config dump's EDS section: istioctl's NAME STATUS LOCALITY CLUSTER
    assert sections[5].splitlines()[0].split() == ["NAME", "STATUS", "LOCALITY", "CLUSTER"]
    assert "outbound|80||catalog.istioinaction.svc.cluster.local" in sections[5]
    dump = json.loads(mesh("all", *CATALOG, "-o", "json").stdout)
    kinds = [c["@type"].rsplit(".", 1)[-1] for c in dump["configs"]]
    assert {"BootstrapConfigDump", "ClustersConfigDump", "EndpointsConfigDump",
            "ListenersConfigDump", "RoutesConfigDump"} <= set(kinds)


def test_rootca_compare_bad_input(mesh):
    one = mesh("rootca-compare", "deploy/catalog", "-n", "istioinaction")
    assert one.returncode == 2 and "rootca-compare requires 2 pods as an argument" in one.stderr
    missing = mesh("rootca-compare", "deploy/catlog", "deploy/catalog", "-n", "istioinaction")
    assert missing.returncode == 3 and missing.stderr.count("\n") == 1
    assert 'deployment "catlog" not found' in missing.stderr
    no_sidecar = mesh("rootca-compare", "deploy/istiod.istio-system", *CATALOG)
    assert no_sidecar.returncode == 3 and "has no istio-proxy container" in no_sidecar.stderr
    both = mesh("rootca-compare", "deploy/catalog", "deploy/istio-ingressgateway.istio-system",
                "-n", "istioinaction")
    if json.loads(mesh("secrets", "deploy/catalog", "-n", "istioinaction", "-o", "json").stdout):
        # real istiod's CA gave both proxies their certificates and its root
        assert (both.returncode, both.stderr) == (0, ""), both.stderr
        assert "have the identical ROOTCA" in both.stdout
        return
    # the sandbox's istiod issues no certificates: no ROOTCA secret to compare
    assert (both.returncode, both.stdout) == (3, "")
    assert both.stderr.count("\n") == 1 and "has no ROOTCA secret" in both.stderr


def test_stats_server_filter_and_formats(mesh):
    out = mesh("stats", *CATALOG, "--filter", r"^cluster_manager\.cds\.")
    assert out.returncode == 0, out.stderr
    names = [line.split(":", 1)[0] for line in out.stdout.splitlines()]
    assert names and all(n.startswith("cluster_manager.cds.") for n in names)
    assert "cluster_manager.cds.update_success" in names
    data = json.loads(mesh("stats", *CATALOG, "--filter", r"^cluster_manager\.cds\.version",
                           "-o", "json").stdout)
    by_name = {s["name"]: s["value"] for s in data["stats"] if "name" in s}
    assert set(by_name) == {"cluster_manager.cds.version", "cluster_manager.cds.version_text"}
    assert isinstance(by_name["cluster_manager.cds.version"], int)  # exact, beyond 2^53
    prom = mesh("stats", *CATALOG, "-o", "prom", "--filter", "cluster_manager.active_clusters")
    assert "# TYPE envoy_cluster_manager_active_clusters gauge" in prom.stdout.splitlines()


def test_stats_of_clusters(mesh):
    out = mesh("stats", *CATALOG, "--type", "clusters", "--filter", "^xds-grpc$")
    assert out.returncode == 0, out.stderr
    assert out.stdout and {line.split("::")[0] for line in out.stdout.splitlines()} == {"xds-grpc"}
    data = json.loads(mesh("stats", *CATALOG, "--type", "clusters", "-o", "json").stdout)
    names = {c["name"] for c in data["cluster_statuses"]}
    assert "outbound|80||catalog.istioinaction.svc.cluster.local" in names


def test_stats_bad_input(mesh):
    for argv, code, words in (
            (("--type", "clusters", "-o", "prom"), 2, "-o prom is for --type server"),
            (("--filter", "("), 2, "is not a regular expression"),
            (("-l", "app=catalog"), 2, "name cannot be provided when the label selector"),
            (("--type", "listeners"), 2, "invalid choice")):
        out = mesh("stats", *CATALOG, *argv)
        assert (out.returncode, out.stdout) == (code, ""), argv
        assert words in out.stderr and "Traceback" not in out.stderr
    none = mesh("stats")
    assert none.returncode == 2 and "stats requires pod name or label selector" in none.stderr
    missing = mesh("stats", "pod/nope", "-n", "istioinaction")
    assert missing.returncode == 3 and missing.stderr.count("\n") == 1


def test_a_workload_uses_one_pod_and_says_which_without_all_pods(mesh, sandbox):
    """stats has no --all-pods: the note names the pod and does not offer it."""
    out = mesh("stats", "deploy/catalog-v2", "-n", "istioinaction", "--filter", "^server.live$")
    names = sorted(p["metadata"]["name"] for p in sandbox.pods("istioinaction", "version=v2"))
    assert (out.returncode, out.stdout) == (0, "server.live: 1\n")
    assert out.stderr == f"using pod {names[0]}.istioinaction (2 pods match deploy/catalog-v2)\n"


def test_kubectl_finds_and_completes_the_new_commands(mesh):
    """kubectl turns `rootca-compare` into the executable kubectl-mesh-rootca_compare and its
    completer kubectl_complete-mesh-rootca_compare (k8s.io/kubectl pkg/cmd/plugin)."""
    import subprocess

    from sandbox.testing import kubectl_binary

    def complete(*words):
        out = subprocess.run([kubectl_binary(), "__complete", "mesh", *words], capture_output=True,
                             text=True, timeout=30, env=mesh.env())
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()

    offered = {line.split("\t")[0] for line in complete("")[:-1]}
    assert {"bootstrap", "all", "ecds", "rootca-compare", "stats"} <= offered
    assert complete("stats", "-o", "") == ["short", "json", "yaml", "prom", ":4"]
    assert complete("rootca-compare", "-n", "istioinaction", "deploy/cat")[:-1] == [
        "deploy/catalog", "deploy/catalog-v2"]
    usage = mesh("rootca-compare", "--help")
    assert usage.returncode == 0 and usage.stdout.startswith("usage: kubectl mesh rootca-compare")
