"""The stdin gate: a command that ends when whoever started it is gone, however it went.

Used where a process must not outlive its client: tcpdump exec'd in a pod (a kubelet does not
kill what it exec'd when the client goes away, kubernetes/kubernetes#89031: it only closes the
process's stdin), and the local `kubectl port-forward` fallback (a child is not killed when
its parent dies, even by `kill -9`).

The command runs in the background while `cat` waits for EOF on the gate's stdin - our
explicit close when we stop, or the pipe/connection dropping however we died - and then gets
SIGTERM (tcpdump handles it like SIGINT: flushes, reports its counts, exits; SIGINT itself is
ignored by a non-interactive shell's background commands), and the gate exits with the
command's status. The command ending by itself (tcpdump -c) ends the gate too. The command
comes in as "$@" (the argv list): never shell text. POSIX sh only (busybox sh included).
"""

from __future__ import annotations

STDIN_GATE = """\
exec 3<&0
"$@" </dev/null 3<&- &
t=$!
cat <&3 >/dev/null 2>&1 &
c=$!
exec 3<&-
while kill -0 "$t" 2>/dev/null && kill -0 "$c" 2>/dev/null; do sleep 0.2; done
kill -TERM "$t" 2>/dev/null
wait "$t" 2>/dev/null
s=$?
kill "$c" 2>/dev/null
exit "$s"
"""


def gated(argv: list[str], sh: str = "sh") -> list[str]:
    """`argv` run behind STDIN_GATE: exec it with stdin open; closing stdin stops it."""
    return [sh, "-c", STDIN_GATE, "sh", *argv]
