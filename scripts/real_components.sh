#!/usr/bin/env bash
# Builds the real components of the sandbox's real backend from their published Go modules
# into a cache outside the checkout, keyed by what decides the binaries (the pinned versions,
# our go.mod/go.sum, the Go version, the build flags):
#   ${KUBECTL_MESH_CACHE:-~/.cache/kubectl-mesh}/real/<key>/bin/
#     etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
#     istioctl, pilot-discovery, pilot-agent
# Idempotent: a complete cache entry is reused as it is; Go's own build cache makes a rebuild
# after a version change incremental.
#
#   scripts/real_components.sh [GROUP...]   build (groups: kubernetes etcd istio; default all)
#   scripts/real_components.sh --dir        print the bin directory, build nothing
#   scripts/real_components.sh pin          rewrite our go.mod/go.sum from versions.env
#
# Nothing of the components' source is committed: only sandbox/real/go/*/go.{mod,sum}.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
mods="$here/sandbox/real/go"
# shellcheck source=/dev/null
. "$mods/versions.env"

declare -A packages=(
  [kubernetes]="k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler"
  [etcd]="go.etcd.io/etcd/server/v3"
  [istio]="istio.io/istio/istioctl/cmd/istioctl istio.io/istio/pilot/cmd/pilot-discovery istio.io/istio/pilot/cmd/pilot-agent"
)
declare -A binaries=(
  [kubernetes]="kube-apiserver kube-controller-manager kube-scheduler"
  [etcd]="etcd"
  [istio]="istioctl pilot-discovery pilot-agent"
)
declare -A requires=(
  [kubernetes]="k8s.io/kubernetes $KUBERNETES"
  [etcd]="go.etcd.io/etcd/server/v3 $ETCD"
  [istio]="istio.io/istio $ISTIO"
)
all_groups=(kubernetes etcd istio)
buildflags=(-trimpath)

die() { echo "real-components: $*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "Go (>= 1.26) is needed to build the real Kubernetes and Istio components; install it (Debian: golang-go is too old, use the Go release the machine provides) or run 'make test-fast', which needs only Python"

export GOFLAGS="-buildvcs=false -mod=readonly"

staging_modules() {
  # The staging modules k8s.io/kubernetes replaces with local paths, from its own go.mod.
  local dir
  dir="$(GOFLAGS= go mod download -json "k8s.io/kubernetes@$KUBERNETES" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  grep -E '^\s*k8s.io/[a-z0-9-]+ => \./staging/' "$dir/go.mod" | awk '{print $1}'
}

pin() {
  export GOFLAGS="-buildvcs=false"
  local g
  rm -f "$mods/kubernetes/go.mod" "$mods/kubernetes/go.sum"
  {
    printf 'module kubectl-mesh.local/sandbox/real/kubernetes\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$KUBERNETES"
    staging_modules | while read -r m; do printf '\t%s => %s %s\n' "$m" "$m" "$KUBERNETES_STAGING"; done
    printf ')\n'
  } > "$mods/kubernetes/go.mod"
  for g in etcd istio; do
    rm -f "$mods/$g/go.mod" "$mods/$g/go.sum"
    read -r path version <<<"${requires[$g]}"
    printf 'module kubectl-mesh.local/sandbox/real/%s\n\ngo 1.26.0\n\nrequire %s %s\n' "$g" "$path" "$version" > "$mods/$g/go.mod"
  done
  for g in "${all_groups[@]}"; do
    # shellcheck disable=SC2086
    (cd "$mods/$g" && go get -tool ${packages[$g]} && go mod tidy)
  done
}

check_pins() {
  local g path version
  for g in "${all_groups[@]}"; do
    read -r path version <<<"${requires[$g]}"
    grep -qE "^\s*(require )?$path $version( |$)" "$mods/$g/go.mod" \
      || die "$mods/$g/go.mod does not require $path $version (versions.env); run 'scripts/real_components.sh pin'"
  done
}

cache_dir() {
  local key
  key="$( { cat "$mods/versions.env" "$mods"/*/go.mod "$mods"/*/go.sum; go version; echo "${buildflags[*]}"; declare -f ldflags_for; } \
          | sha256sum | cut -c1-16)"
  echo "${KUBECTL_MESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-mesh}/real/$key"
}

ldflags_for() {
  # Kubernetes binaries report the version their build stamps in (k8s.io/component-base/version,
  # as hack/lib/version.sh does); without it they say v0.0.0-master.
  local g="$1" v minor
  if [ "$g" = kubernetes ]; then
    minor="${KUBERNETES#v1.}"; minor="${minor%%.*}"
    for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      printf -- ' -X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitTreeState=clean' \
        "$v" "$KUBERNETES" "$v" "$v" "$minor" "$v"
    done
  elif [ "$g" = istio ]; then
    # Istio's Makefile.core.mk: VERSION is the VERSION file plus -dev on a branch build; the
    # revision is the commit the pseudo-version names. Without them istioctl says "unknown".
    local dir rev
    dir="$(GOFLAGS= go mod download -json "istio.io/istio@$ISTIO" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
    v="$(cat "$dir/VERSION")-dev"; rev="${ISTIO##*-}"
    printf -- ' -X istio.io/istio/pkg/version.%s' "buildVersion=$v" "buildGitRevision=$rev" \
      "buildStatus=Clean" "buildTag=$v"
  fi
}

build_group() {
  local g="$1" bin="$2" b missing=0
  for b in ${binaries[$g]}; do [ -x "$bin/$b" ] || missing=1; done
  [ "$missing" = 0 ] && return 0
  local tmp start
  tmp="$(mktemp -d "$bin/.build-$g.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  start=$(date +%s)
  echo "real-components: building $g (${requires[$g]}) into $bin" >&2
  local out="$tmp/"
  [ "$g" = etcd ] && out="$tmp/etcd"  # the module's main package would be named v3
  # shellcheck disable=SC2086
  (cd "$mods/$g" && go build "${buildflags[@]}" "-ldflags=-s -w$(ldflags_for "$g")" -o "$out" ${packages[$g]})
  for b in ${binaries[$g]}; do mv -f "$tmp/$b" "$bin/$b"; done
  rm -rf "$tmp"
  trap - EXIT
  echo "real-components: built $g in $(( $(date +%s) - start )) s" >&2
}

case "${1:-}" in
  pin) pin; exit 0 ;;
  --dir) check_pins; echo "$(cache_dir)/bin"; exit 0 ;;
esac

check_pins
groups=("$@")
[ ${#groups[@]} -eq 0 ] && groups=("${all_groups[@]}")
bin="$(cache_dir)/bin"
mkdir -p "$bin"
for g in "${groups[@]}"; do
  [ -n "${packages[$g]:-}" ] || die "unknown group '$g' (groups: ${all_groups[*]})"
  build_group "$g" "$bin"
done
echo "$bin"
