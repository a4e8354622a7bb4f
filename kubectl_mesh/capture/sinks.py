"""Where packets go: a pcap or pcapng stream (file, stdout, Wireshark, tshark), or one file
per pod. A sink takes whole records only, so what it wrote is valid whenever it stops.
`close()` keeps what was written; `discard()` (a capture that failed before its first packet)
drops the files it wrote, so no header-only file looks like a capture."""

from __future__ import annotations

import contextlib
import os
from typing import BinaryIO

from kubectl_mesh.capture.outfile import CaptureFile
from kubectl_mesh.capture.pcap import PcapHeader, Record
from kubectl_mesh.capture.pcapng import PcapngWriter


class _StreamSink:
    """What the stream sinks share: `close()` keeps what was written, `discard()` drops the
    -o FILE they write (its owner), else just closes."""

    out: BinaryIO
    owner: CaptureFile | None

    def close(self) -> None:
        self.out.flush()

    def discard(self) -> None:
        if self.owner is not None:
            self.owner.discard()
        else:
            self.close()


class PcapSink(_StreamSink):
    """Classic pcap for a single pod: tcpdump's own header, then its records unchanged."""

    def __init__(self, out: BinaryIO, flush: bool = True, owner: CaptureFile | None = None):
        self.out, self.flush, self._header = out, flush, None
        self.owner = owner  # the -o FILE being written, if any

    def add_pod(self, key: str, header: PcapHeader, name: str, description: str) -> None:
        if self._header is None:
            self._header = header
            self.out.write(header.raw)
            if self.flush:
                self.out.flush()

    def write(self, key: str, record: Record) -> int:
        self.out.write(record.raw)
        if self.flush:
            self.out.flush()  # live viewers see each packet at once (like tcpdump -U)
        return len(record.raw)


class PcapngSink(_StreamSink):
    """One pcapng for many pods, one interface per pod."""

    def __init__(self, out: BinaryIO, flush: bool = True, owner: CaptureFile | None = None):
        self.out, self.flush = out, flush
        self.owner = owner
        self.writer = PcapngWriter(out)

    def add_pod(self, key: str, header: PcapHeader, name: str, description: str) -> None:
        self.writer.add_interface(key, header, name, description)
        if self.flush:
            self.out.flush()

    def write(self, key: str, record: Record) -> int:
        n = self.writer.write(key, record)
        if self.flush:
            self.out.flush()
        return n


class DirectorySink:
    """`-o DIR/`: a classic pcap file per pod, `DIR/POD.NAMESPACE.pcap` (each written like
    `-o FILE`: `outfile.CaptureFile`); a new DIR is private (0700)."""

    def __init__(self, directory: str):
        self.created = not os.path.isdir(directory)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.directory = directory
        self._sinks: dict[str, PcapSink] = {}
        self._files: list[CaptureFile] = []
        self.paths: list[str] = []

    def add_pod(self, key: str, header: PcapHeader, name: str, description: str) -> None:
        path = os.path.join(self.directory, f"{key}.pcap")
        self.paths.append(path)
        self._files.append(CaptureFile(path))
        self._sinks[key] = PcapSink(self._files[-1].file, flush=False)
        self._sinks[key].add_pod(key, header, name, description)

    def write(self, key: str, record: Record) -> int:
        return self._sinks[key].write(key, record)

    def close(self) -> None:
        for capture_file in self._files:
            capture_file.close()

    def discard(self) -> None:
        """Drop every pod's file, and DIR when this run made it and it is left empty."""
        for capture_file in self._files:
            capture_file.discard()
        if self.created:
            with contextlib.suppress(OSError):
                os.rmdir(self.directory)


class TeeSink:
    """The same packets into several sinks (e.g. a file and tshark's summary)."""

    def __init__(self, *sinks):
        self.sinks = sinks

    def add_pod(self, *args) -> None:
        for sink in self.sinks:
            sink.add_pod(*args)

    def write(self, key: str, record: Record) -> int:
        return max(sink.write(key, record) for sink in self.sinks)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()

    def discard(self) -> None:
        for sink in self.sinks:
            sink.discard()
