"""xds.http2: HPACK against RFC 7541's own examples, frames split across reads, and the
gRPC client's answer to a server that is not HTTP/2."""

from __future__ import annotations

import socket
import threading

import pytest

from kubectl_mesh.xds import grpcstream, http2


def test_hpack_request_example_with_huffman():
    """RFC 7541 C.4.1: indexed fields and a Huffman-coded literal."""
    block = bytes.fromhex("828684418cf1e3c2e5f23a6ba0ab90f4ff")
    assert http2.HpackDecoder().decode(block) == [
        (":method", "GET"), (":scheme", "http"), (":path", "/"),
        (":authority", "www.example.com")]


def test_hpack_responses_share_the_dynamic_table_and_evict_from_it():
    """RFC 7541 C.6.1-C.6.2 (table size 256): the second response refers to the first's
    entries, and adding :status 307 evicts :status 302."""
    decoder = http2.HpackDecoder(256)
    first = decoder.decode(bytes.fromhex(
        "488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad1718"
        "63c78f0b97c8e9ae82ae43d3"))
    assert first == [(":status", "302"), ("cache-control", "private"),
                     ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                     ("location", "https://www.example.com")]
    second = decoder.decode(bytes.fromhex("4883640effc1c0bf"))
    assert second == [(":status", "307")] + first[1:]
    assert (":status", "302") not in decoder.table and decoder.used == 222


def test_hpack_literals_we_send_read_back_and_long_integers():
    headers = [("authorization", "Bearer " + "t" * 1000), (":path", "/a/b"), ("x", "")]
    assert http2.HpackDecoder().decode(http2.encode_headers(headers)) == headers


@pytest.mark.parametrize("bad", ["ff7f", "be", "41", "418cf1e3"], ids=[
    "index-past-table", "index-past-dynamic", "literal-cut", "huffman-cut"])
def test_hpack_bad_blocks_are_protocol_errors(bad):
    with pytest.raises(http2.ProtocolError):
        http2.HpackDecoder().decode(bytes.fromhex(bad))


def test_frames_split_anywhere_across_reads_come_out_whole():
    wire = (http2.frame(http2.SETTINGS, 0, 0, b"\x00\x04\x00\x01\x00\x00")
            + http2.frame(http2.DATA, http2.PADDED, 1, b"\x02abc\x00\x00")
            + http2.frame(http2.PING, 0, 0, b"12345678"))
    for cut in range(len(wire) + 1):
        reader = http2.FrameReader(http2.DEFAULT_FRAME_SIZE)
        got = []
        for part in (wire[:cut], wire[cut:]):
            reader.feed(part)
            got += list(reader.frames())
        assert [(k, s) for k, _, s, _ in got] == [(http2.SETTINGS, 0), (http2.DATA, 1),
                                                  (http2.PING, 0)]
        assert http2.unpad(got[1][1], got[1][3]) == b"abc"


def _server_answering(answer: bytes):
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(answer)
    threading.Thread(target=serve, daemon=True).start()
    return listener


def test_an_http1_answer_is_not_http2():
    listener = _server_answering(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    with listener, socket.create_connection(listener.getsockname(), timeout=5) as sock:
        with pytest.raises(grpcstream.CallError, match="not an HTTP/2"):
            grpcstream.call_first(sock, "/x", b"", authority="a", timeout=5)


def test_a_trailers_only_error_and_a_goaway_are_said():
    status = http2.encode_headers([(":status", "200"), ("grpc-status", "16"),
                                   ("grpc-message", "no%20token")])
    answer = (http2.settings({}) + http2.frame(http2.HEADERS,
                                              http2.END_HEADERS | http2.END_STREAM, 1, status))
    listener = _server_answering(answer)
    with listener, socket.create_connection(listener.getsockname(), timeout=5) as sock:
        with pytest.raises(grpcstream.GrpcStatusError, match="Unauthenticated: no token"):
            grpcstream.call_first(sock, "/x", b"", authority="a", timeout=5)
    goaway = http2.frame(http2.GOAWAY, 0, 0, b"\x00" * 8 + b"too many pings")
    listener = _server_answering(http2.settings({}) + goaway)
    with listener, socket.create_connection(listener.getsockname(), timeout=5) as sock:
        with pytest.raises(grpcstream.CallError, match="closed the HTTP/2 connection: too many"):
            grpcstream.call_first(sock, "/x", b"", authority="a", timeout=5)
