"""The sniff entry point the CLI calls: resolve pods, choose the sink, run, clean up."""

from __future__ import annotations

import contextlib
from typing import IO

from kubectl_mesh.capture.options import SniffOptions
from kubectl_mesh.capture.runner import CaptureRun
from kubectl_mesh.capture import bpffilter, outfile, sinks, viewers
from kubectl_mesh.errors import UsageError


def sniff(opts: SniffOptions, cluster, *, stdout: IO[str], stderr: IO[str]) -> int:
    """Capture per `opts`; returns the exit code (errors raise `MeshError`s)."""
    from kubectl_mesh.session import Session, ready_pods

    bpffilter.check(opts.filter, opts.interface)  # before anything exists in the cluster
    with Session.open(cluster, stderr) as session, contextlib.ExitStack() as stack:
        # Any pod, as ksniff captures any: exec, ephemeral and node modes need no Envoy.
        ready = ready_pods(session.proxies(opts.target, opts.selector, stderr=stderr,
                                           any_pod=True),
                           opts.target or f"-l {opts.selector}", stderr)
        _note_mesh_only(opts, ready, stderr)
        jsons = [session.api.get_pod(p.namespace, p.name) for p in ready]
        sink = _sink(opts, ready, stdout, stderr, stack)
        names = ", ".join(p.ref for p in ready)
        print(f"capturing on {opts.interface} in {names} (mode {opts.mode})", file=stderr)
        return CaptureRun(session.api, ready, jsons, opts, sink, stderr,
                          notices=session.notices).run()


def _note_mesh_only(opts: SniffOptions, pods: list, stderr) -> None:
    """One line when an option that means something only beside a sidecar meets pods
    without one: `-i lo` is the app's plaintext leg only where Envoy relays to the app."""
    plain = [p for p in pods if not p.has_proxy]
    if plain and opts.interface == "lo":
        which = plain[0].ref if len(plain) == 1 else f"{len(plain)} of the pods (e.g. " \
                                                     f"{plain[0].ref})"
        print(f"note: {which} has no istio-proxy sidecar: -i lo captures only its own "
              "loopback traffic, not an app<->sidecar plaintext leg", file=stderr)


def _sink(opts: SniffOptions, pods: list, stdout, stderr, stack: contextlib.ExitStack):
    multi = len(pods) > 1
    targets = []
    if opts.to_directory:
        return sinks.DirectorySink(opts.output)
    if opts.output == "-":
        binary = getattr(stdout, "buffer", None)
        if binary is None:
            raise UsageError("-o - needs a binary stdout")
        targets.append(_stream_sink(binary, multi))
    elif opts.output:
        capture_file = stack.enter_context(outfile.CaptureFile(opts.output))
        targets.append(_stream_sink(capture_file.file, multi or opts.output.endswith(".pcapng"),
                                    flush=False, owner=capture_file))
    if opts.summary:
        tshark = viewers.start_tshark_summary(stdout)
        stack.callback(_end_viewer, tshark)
        targets.append(_stream_sink(tshark.stdin, multi))
    if not targets:
        title = f"kubectl mesh sniff {pods[0].namespace}/{pods[0].name}" + (
            f" (+{len(pods) - 1} pods)" if multi else "")
        wireshark = viewers.start_wireshark(title)
        stack.callback(_end_viewer, wireshark, False)
        print(f"started Wireshark (pid {wireshark.pid}); close it to stop", file=stderr)
        targets.append(_stream_sink(wireshark.stdin, multi))
    return targets[0] if len(targets) == 1 else sinks.TeeSink(*targets)


def _stream_sink(out, pcapng: bool, flush: bool = True, owner=None):
    return sinks.PcapngSink(out, flush, owner) if pcapng else sinks.PcapSink(out, flush, owner)


def _end_viewer(proc, wait: bool = True) -> None:
    """Close the viewer's input; tshark finishes its lines, Wireshark keeps its window."""
    with contextlib.suppress(OSError, ValueError):
        proc.stdin.close()
    if wait:
        with contextlib.suppress(Exception):
            proc.wait(timeout=10)
