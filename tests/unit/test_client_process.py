"""How a client's output becomes the blocks the full load writes: whole lines in blocks of at least
LEAST_BLOCK (the last one excepted), nothing lost or added, and a cut or failed client refused.

A real second process (this Python) stands in for psql or mariadb: what is tested is the reading,
which does not depend on which program writes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cdc_platform.pipeline.client_process import LEAST_BLOCK, ClientProcess

#: writes `lines` lines of 57 bytes in small flushed writes, the way a client prints rows
WRITER = """
import sys
out = sys.stdout.buffer
for i in range({lines}):
    out.write(b"%08d\\tsome text of a row, fifty-seven bytes long\\n" % i)
    if i % 50 == 0:
        out.flush()
out.write({tail!r})
out.flush()
sys.stderr.write({error!r})
sys.exit({status})
"""


def _client(lines: int, tail: bytes = b"", error: str = "", status: int = 0) -> ClientProcess:
    script = WRITER.format(lines=lines, tail=tail, error=error, status=status)

    def command(directory: Path) -> tuple[list[str], dict[str, str]]:
        return [sys.executable, "-c", script], {}

    return ClientProcess(command)


def _read_all(client: ClientProcess, binary: bool = False) -> list[bytes]:
    """Every block (or binary chunk) the client's output gives, the client closed afterwards."""
    try:
        return list(client.chunks() if binary else client.blocks())
    finally:
        client.close()


def test_many_small_writes_arrive_as_few_blocks_of_whole_lines():
    blocks = _read_all(_client(40_000))
    data = b"".join(blocks)
    assert data.count(b"\n") == 40_000 and data.endswith(
        b"00039999\tsome text of a row, fifty-seven bytes long\n"
    )
    assert all(block.endswith(b"\n") for block in blocks)
    assert all(len(block) >= LEAST_BLOCK for block in blocks[:-1])
    assert len(blocks) <= len(data) // LEAST_BLOCK + 1


def test_output_cut_inside_a_line_is_refused():
    with pytest.raises(RuntimeError, match="ended inside a line"):
        _read_all(_client(10, tail=b"00000010\tcut he"))


def test_a_failing_client_raises_its_own_error_text():
    with pytest.raises(RuntimeError, match="Lost connection"):
        _read_all(_client(10, error="ERROR 2013 (HY000): Lost connection", status=1))


def test_binary_chunks_pass_every_byte_in_blocks_of_the_least_size():
    chunks = _read_all(_client(30_000, tail=b"\x00\xff no newline at the end"), binary=True)
    data = b"".join(chunks)
    assert data.count(b"\n") == 30_000 and data.endswith(b"\x00\xff no newline at the end")
    assert all(len(chunk) >= LEAST_BLOCK for chunk in chunks[:-1])


def test_a_reader_opening_the_clients_pipe_by_path_gets_every_byte_and_nothing_is_taken_first():
    """What LOAD DATA LOCAL INFILE '/proc/self/fd/N' does with psql's output: the wait for the first
    output leaves it in the pipe, and the client's own count of bytes written is readable after."""
    client = _client(20_000)
    try:
        client.wait_for_output()
        path = client.stream_path()
        assert path is not None and path.startswith("/proc/self/fd/")
        with open(path, "rb") as stream:
            data = stream.read()
        written = client.written_bytes()
        client.finish()
    finally:
        client.close()
    assert data.count(b"\n") == 20_000 and data.startswith(b"00000000\t")
    assert written is not None and written >= len(data)


def test_a_client_that_fails_before_writing_is_unavailable_and_one_that_fails_later_raises():
    from cdc_platform.pipeline.client_process import ClientUnavailable

    with pytest.raises(ClientUnavailable, match="could not connect"):
        _client(0, error="psql: error: could not connect", status=2).wait_for_output()
    late = _client(100, error="ERROR: terminating connection", status=1)
    try:
        late.wait_for_output()  # it wrote first: available
        with open(late.stream_path(), "rb") as stream:
            assert stream.read().count(b"\n") == 100
        with pytest.raises(RuntimeError, match="terminating connection"):
            late.finish()
    finally:
        late.close()


def test_a_client_that_ends_cleanly_without_output_is_an_empty_stream():
    empty = _client(0)
    try:
        empty.wait_for_output()
        with open(empty.stream_path(), "rb") as stream:
            assert stream.read() == b""
        empty.finish()
    finally:
        empty.close()
