"""`kubectl mesh sniff`: packet capture from pods (tcpdump over exec) into pcap/pcapng.

- `pcap.py` / `pcapng.py` – reading tcpdump's classic pcap stream, writing pcapng;
- `tcpdump.py` – the tcpdump argv (never a shell) and its exit statistics;
- `backends.py` – exec / ephemeral / node: Setup, Start(out), Cleanup for one pod;
- `sinks.py` – where packets go (file, stdout, directory, Wireshark);
- `runner.py` – many pods at once, limits, signals and cleanup on every exit path.
"""

from kubectl_mesh.capture.options import SniffOptions

__all__ = ["SniffOptions"]
