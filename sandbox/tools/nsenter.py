"""The sandbox's `nsenter`, for node-mode captures: `nsenter -t PID -n [--] CMD ARGS...`.

Simulated: the sandbox node is the host and a pod's "network namespace" is its loopback
address, so entering the net namespace of container process PID means running CMD with that
pod's `POD_IP` (read from /proc/PID/environ) as root. Only a privileged, hostPID container may
do it, like on a real node. CMD runs without a shell.
"""

from __future__ import annotations

import getopt
import os
import sys

from sandbox.tools import FACTS_ENV, facts_from_env


def pod_ip_of(pid: int) -> str | None:
    """The POD_IP in a sandbox container process's environment."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            for item in f.read().split(b"\0"):
                if item.startswith(b"POD_IP="):
                    return item[len(b"POD_IP="):].decode()
    except OSError:
        return None
    return None


def main(argv: list[str]) -> int:
    try:
        opts, rest = getopt.getopt(argv, "t:nmpuiUCa", ["target=", "net", "all"])
    except getopt.GetoptError as e:
        sys.stderr.write(f"nsenter: {e}\n")
        return 1
    target = next((v for o, v in opts if o in ("-t", "--target")), None)
    if target is None or not rest:
        sys.stderr.write("nsenter: this sandbox shim supports `nsenter -t PID -n CMD...`\n")
        return 1
    facts = facts_from_env()
    if not (facts.get("privileged") and facts.get("hostPID")):
        sys.stderr.write(f"nsenter: cannot open /proc/{target}/ns/net: Permission denied\n")
        return 1
    ip = pod_ip_of(int(target)) if target.isdigit() else None
    if ip is None:
        sys.stderr.write(f"nsenter: cannot open /proc/{target}/ns/net: No such file or directory\n")
        return 1
    env = dict(os.environ, POD_IP=ip)
    # Inside the target's namespace the command still runs with our (privileged) credentials.
    env[FACTS_ENV] = os.environ.get(FACTS_ENV, "{}")
    try:
        os.execvpe(rest[0], rest, env)
    except OSError as e:
        sys.stderr.write(f"nsenter: failed to execute {rest[0]}: {e.strerror}\n")
        return 127
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
