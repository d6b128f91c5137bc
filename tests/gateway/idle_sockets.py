"""Hold idle TCP connections to HOST:PORT until stdin closes (a process of its own:
each process has its own open-file limit, raised here to the hard one).

Each line read from stdin is a number of connections to open more; once they are
established the process prints ``open <total>``. Opening in rounds lets the caller
wait for the server to take each round in, so the accept queue never overflows (a
dropped SYN costs its client a second or more). Sockets close with a reset at exit,
leaving no TIME_WAIT ports behind.

Each process connects from its own loopback addresses (127.<N>.0.1, 127.<N>.0.2, ...;
N is the third argument), a few thousand connections per address: Linux looks for a
free local port per source address, and that search slows to a crawl once half the
ephemeral range is taken from one address.

    python -m tests.gateway.idle_sockets 127.0.0.1 8080 1
"""

from __future__ import annotations

import errno
import resource
import selectors
import socket
import struct
import sys
import time

WINDOW = 256
PER_SOURCE_ADDRESS = 4000
CONNECT_WITHIN_S = 120.0
RESET_ON_CLOSE = struct.pack("ii", 1, 0)


def raise_file_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def source_address(network: int, nth: int) -> str:
    """The loopback address the ``nth`` connection of this process comes from."""
    block = nth // PER_SOURCE_ADDRESS
    return f"127.{network}.{block // 250}.{block % 250 + 1}"


def open_idle(host: str, port: int, network: int, first: int, count: int) -> list[socket.socket]:
    selector = selectors.DefaultSelector()
    established: list[socket.socket] = []
    pending = 0
    started = 0
    deadline = time.monotonic() + CONNECT_WITHIN_S
    while len(established) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(established)} of {count} connections established")
        while pending < WINDOW and started < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((source_address(network, first + started), 0))
            sock.setblocking(False)
            code = sock.connect_ex((host, port))
            if code not in (0, errno.EINPROGRESS):
                raise OSError(code, f"connect: {errno.errorcode.get(code, code)}")
            selector.register(sock, selectors.EVENT_WRITE)
            pending += 1
            started += 1
        for key, _ in selector.select(timeout=1.0):
            sock = key.fileobj  # type: ignore[assignment]
            selector.unregister(sock)
            pending -= 1
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                raise OSError(code, f"connect: {errno.errorcode.get(code, code)}")
            established.append(sock)
    selector.close()
    return established


def main() -> None:
    host, port, network = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    raise_file_limit()
    sockets: list[socket.socket] = []
    for line in sys.stdin:  # until the caller closes our stdin
        sockets += open_idle(host, port, network, len(sockets), int(line))
        print(f"open {len(sockets)}", flush=True)
    for sock in sockets:
        sock.close()


if __name__ == "__main__":
    main()
