"""The shared flags, the duration parser and the one top-level error handler `run()`."""

from __future__ import annotations

import argparse
import io
import os
import signal
import subprocess
import textwrap

import pytest

from kubectl_mesh.cli import common
from kubectl_mesh.errors import (AdminError, BadInputError, ExitCode, FindingsError,
                                 ForbiddenError, MeshError, NotFoundError, ToolMissingError,
                                 UnreachableError, UsageError)

from conftest import REPO, VENV_PYTHON


@pytest.mark.parametrize("text,seconds", [
    ("10s", 10.0), ("500ms", 0.5), ("1m", 60.0), ("5m", 300.0), ("1h", 3600.0),
    ("1m30s", 90.0), ("1.5s", 1.5), ("7", 7.0), ("0.25", 0.25), ("0", 0.0),
], ids=lambda v: str(v))
def test_parse_duration(text, seconds):
    assert common.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "10x", "-1", "s", "5 m", "1m-3s", "nan", "inf", "10s5"])
def test_parse_duration_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError):
        common.parse_duration(text)


def _parser(**kwargs):
    parser = common.command_parser("kubectl mesh routes")
    common.add_cluster_flags(parser, **kwargs)
    common.add_output_flag(parser)
    common.add_concurrency_flag(parser)
    return parser


def test_cluster_flag_defaults_and_options():
    args = _parser(all_namespaces=True).parse_args([])
    options = common.cluster_options(args)
    assert options == common.ClusterOptions(request_timeout=10.0, proxy_admin_port=15000)
    assert (args.output, args.concurrency, args.debug) == ("short", 10, False)

    args = _parser(all_namespaces=True).parse_args(
        ["--kubeconfig", "/k", "--context", "c", "-n", "ns", "-A", "--request-timeout", "500ms",
         "--proxy-admin-port", "15001", "-o", "json", "--concurrency", "3", "--debug"])
    assert common.cluster_options(args) == common.ClusterOptions(
        kubeconfig="/k", context="c", namespace="ns", all_namespaces=True,
        request_timeout=0.5, proxy_admin_port=15001)
    assert (args.output, args.concurrency, args.debug) == ("json", 3, True)
    # kubectl's convention: a zero request timeout means none.
    assert common.cluster_options(
        _parser().parse_args(["--request-timeout", "0"])).request_timeout is None


@pytest.mark.parametrize("argv,needle", [
    (["--request-timeout", "soon"], "invalid duration"),
    (["-o", "xml"], "choose from 'short', 'json', 'yaml'"),
    (["--proxy-admin-port", "70000"], "invalid port"),
    (["--concurrency", "0"], "invalid value"),
    (["-A"], "unknown flag -A"),  # only listing commands get -A
    (["--name", "x"], "unknown flag --name"),  # no abbreviation of --namespace
], ids=["duration", "output", "port", "concurrency", "no-A", "no-abbrev"])
def test_bad_flags_are_usage_errors(argv, needle):
    def main_fn(argv, *, prog, stdout, stderr):
        _parser().parse_args(argv)

    out, err = io.StringIO(), io.StringIO()
    assert common.run(main_fn, argv, prog="x", stdout=out, stderr=err) == ExitCode.USAGE
    assert needle in err.getvalue()
    assert err.getvalue().startswith("usage: kubectl mesh routes")  # usage for argument errors
    assert len(err.getvalue().splitlines()) == 2  # the usage line and the error, no block
    assert out.getvalue() == ""


def test_help_goes_to_injected_stdout():
    def main_fn(argv, *, prog, stdout, stderr):
        _parser(all_namespaces=True).parse_args(argv)

    out, err = io.StringIO(), io.StringIO()
    assert common.run(main_fn, ["--help"], prog="x", stdout=out, stderr=err) == 0
    for flag in ("--kubeconfig", "--context", "-n NAMESPACE, --namespace", "-A, --all-namespaces",
                 "--request-timeout", "--proxy-admin-port", "-o {short,json,yaml}", "--debug"):
        assert flag in out.getvalue()
    assert err.getvalue() == ""


@pytest.mark.parametrize("argv0,command,expected", [
    ("/usr/local/bin/kubectl-mesh-routes", "routes", "kubectl mesh routes"),
    ("/home/u/.krew/bin/kubectl-mesh", "routes", "kubectl mesh routes"),
    ("/home/u/.krew/bin/kubectl-mesh", None, "kubectl mesh"),
    ("/usr/lib/python3/site-packages/kubectl_mesh/cli/routes.py", "routes", "kubectl-mesh-routes"),
    ("pytest", None, "kubectl-mesh"),
])
def test_prog_name(argv0, command, expected):
    assert common.prog_name(command, argv0=argv0) == expected


def _raiser(exc):
    def main_fn(argv, *, prog, stdout, stderr):
        stdout.write("partial data\n")
        raise exc
    return main_fn


@pytest.mark.parametrize("exc,code", [
    (MeshError("boom"), 1), (UsageError("bad"), 2), (NotFoundError("gone"), 3),
    (ForbiddenError("no"), 4), (UnreachableError("down"), 5), (AdminError("503", status=503), 5),
    (BadInputError("junk"), 6), (FindingsError("drift"), 7), (ToolMissingError("tcpdump"), 8),
], ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v))
def test_mesh_errors_map_to_exit_codes(exc, code):
    out, err = io.StringIO(), io.StringIO()
    assert common.run(_raiser(exc), [], prog="x", stdout=out, stderr=err) == code
    assert err.getvalue() == f"error: {exc.message}\n"
    assert out.getvalue() == "partial data\n"


def test_hint_is_on_the_same_line_and_no_usage():
    err = io.StringIO()
    exc = NotFoundError("catalog-7d9f.istioinaction has no istio-proxy container",
                        hint="is sidecar injection enabled?")
    assert common.run(_raiser(exc), [], prog="x", stdout=io.StringIO(), stderr=err) == 3
    assert err.getvalue() == ("error: catalog-7d9f.istioinaction has no istio-proxy container "
                              "(is sidecar injection enabled?)\n")


def test_unexpected_error_without_and_with_debug():
    err = io.StringIO()
    assert common.run(_raiser(ValueError("bad thing")), [], prog="x", stdout=io.StringIO(),
                      stderr=err) == 1
    assert err.getvalue() == ("error: unexpected: ValueError: bad thing "
                              "(run with --debug for the traceback)\n")

    err = io.StringIO()
    assert common.run(_raiser(ValueError("bad thing")), ["--debug"], prog="x",
                      stdout=io.StringIO(), stderr=err) == 1
    assert "Traceback (most recent call last)" in err.getvalue()
    assert err.getvalue().rstrip().endswith("error: unexpected: ValueError: bad thing")


def test_debug_shows_traceback_for_mesh_errors_too():
    err = io.StringIO()
    assert common.run(_raiser(NotFoundError("gone")), ["x", "--debug"], prog="x",
                      stdout=io.StringIO(), stderr=err) == 3
    assert "Traceback" in err.getvalue() and err.getvalue().endswith("error: gone\n")
    # `--debug` after `--` is an argument, not the flag.
    err = io.StringIO()
    common.run(_raiser(NotFoundError("gone")), ["--", "--debug"], prog="x",
               stdout=io.StringIO(), stderr=err)
    assert "Traceback" not in err.getvalue()


def test_missing_package_is_tool_missing():
    err = io.StringIO()
    exc = ModuleNotFoundError("No module named 'pydantic'", name="pydantic")
    assert common.run(_raiser(exc), [], prog="x", stdout=io.StringIO(), stderr=err) == 8
    assert "'pydantic' is missing" in err.getvalue() and "pip install --user pydantic" in err.getvalue()


def test_keyboard_interrupt_in_process():
    err = io.StringIO()
    assert common.run(_raiser(KeyboardInterrupt()), [], prog="x", stdout=io.StringIO(),
                      stderr=err) == 130
    assert err.getvalue() == ""


def test_return_value_is_the_exit_code():
    def main_fn(argv, *, prog, stdout, stderr):
        return 7 if argv == ["seven"] else None

    assert common.run(main_fn, ["seven"], prog="x", stdout=io.StringIO(), stderr=io.StringIO()) == 7
    assert common.run(main_fn, [], prog="x", stdout=io.StringIO(), stderr=io.StringIO()) == 0


def _script(body: str) -> list[str]:
    code = textwrap.dedent("""
        import sys, time
        from kubectl_mesh.cli.common import run
        def main_fn(argv, *, prog, stdout, stderr):
        {body}
        sys.exit(run(main_fn, sys.argv[1:], prog="t", stdout=None, stderr=None))
    """).replace("{body}", textwrap.indent(textwrap.dedent(body), "    "))
    return [VENV_PYTHON, "-c", code]


def _env():
    return dict(os.environ, PYTHONPATH=REPO)


def test_closed_pipe_is_quiet():
    """Like `kubectl mesh routes ... | head -1`: the reader goes away mid-output."""
    proc = subprocess.Popen(_script("""
        for i in range(200000):
            print(f"line {i} " + "x" * 60)
        return 0
    """), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=20) == 0
    assert first.startswith(b"line 0 ")
    assert err == "", err  # no BrokenPipeError traceback, not even at interpreter exit


def test_broken_pipe_from_elsewhere_is_not_swallowed():
    """A BrokenPipeError from a socket while stdout is fine is a real failure."""
    result = subprocess.run(_script("""
        print("ok")
        raise BrokenPipeError(32, "Broken pipe")
    """), capture_output=True, text=True, env=_env(), timeout=20)
    assert result.returncode == 1
    assert result.stdout == "ok\n"
    assert "error: unexpected: BrokenPipeError" in result.stderr


def test_ctrl_c_exits_130_without_traceback():
    proc = subprocess.Popen(_script("""
        print("ready", flush=True)
        time.sleep(30)  # a command busy until the signal ends it
    """), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    try:
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130
        assert proc.stderr.read() == b""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                       (signal.SIGHUP, 129)], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_ending_signals_clean_up_then_exit_128_plus_the_signal(sig, code):
    """The one rule, in the one runner: every command's `finally` runs, then 128 + signum."""
    proc = subprocess.Popen(_script("""
        try:
            print("ready", flush=True)
            time.sleep(30)  # a command busy until the signal ends it
        finally:
            print("cleaned up", flush=True)
    """), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    try:
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == code
        assert proc.stdout.read() == b"cleaned up\n"
        assert proc.stderr.read() == b""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_signal_during_deferred_cleanup_waits_for_it_then_ends_the_command():
    proc = subprocess.Popen(_script("""
        from kubectl_mesh import signals
        with signals.deferred() as got:
            print("cleaning", flush=True)
            time.sleep(1)  # a cleanup that takes a while: the signal arrives during it
            print("cleaned up", flush=True)
        signals.reraise(got)
        print("not reached", flush=True)
    """), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    assert proc.stdout.readline() == b"cleaning\n"
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=10) == 129
    assert proc.stdout.read() == b"cleaned up\n"


@pytest.mark.parametrize("columns", ["60", "", "abc", "-3"])
def test_help_width_is_shutils_without_importing_it(columns, monkeypatch):
    """The width of --help is what shutil.get_terminal_size() says, and parsing a command line
    (a formatter per add_argument) imports neither shutil nor logging: start-up time."""
    import shutil
    monkeypatch.setenv("COLUMNS", columns)
    assert common.terminal_columns() == shutil.get_terminal_size().columns
    script = ("import sys; from kubectl_mesh.cli import routes; "
              "import kubectl_mesh.session, kubectl_mesh.kube.portforward, "
              "kubectl_mesh.kube.forwardport; "
              "routes.build_parser('kubectl mesh routes').parse_args(['deploy/x']); "
              "print(sorted({'shutil', 'logging'} & set(sys.modules)))")
    out = subprocess.run([VENV_PYTHON, "-c", script], capture_output=True, text=True,
                         check=True, timeout=60, env={**os.environ, "COLUMNS": columns})
    assert out.stdout.strip() == "[]"
