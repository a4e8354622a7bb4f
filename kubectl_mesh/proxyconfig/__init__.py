"""The proxy-config commands (`routes`, `clusters`, `listeners`, `endpoints`, `secrets`):
fetch one section of a proxy's config dump – live from its Envoy admin or from `--file` –
build the table of it (`configdump/`) and write it through `output.py`.

    opts = ProxyConfigOptions(view=ClustersView(ClusterFilter(port=80)), target="deploy/x")
    code = run(opts, stdout, stderr)          # command.run
"""
