"""A userspace ``netem`` for kernels without ``sch_netem``: delays and drops
what one test-bed host sends to the others.

Run inside the host's namespace (``TestBed.slow_link`` does all of this):
a policy rule sends the host's own outgoing packets for the bed's subnet to a
TUN device; this process reads each packet, drops it with probability
``loss``, and after ``delay`` writes it out through a raw socket bound to
``eth0`` (a socket bound to a device skips the TUN route, so the kernel sends
it, ARP included, as it would have). Addresses and checksums are untouched.

    python slowlink.py DEV DELAY_S LOSS
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import os
import random
import select
import socket
import struct
import sys
import threading
import time

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def main(dev: str, delay: float, loss: float) -> None:
    tun = open_tun(dev)
    out = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    out.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
    queue: list[tuple[float, int, bytes]] = []
    ready = threading.Condition()
    seq = 0

    def sender() -> None:
        while True:
            with ready:
                while not queue or queue[0][0] > time.monotonic():
                    ready.wait(None if not queue else queue[0][0] - time.monotonic())
                _, _, packet = heapq.heappop(queue)
            if len(packet) >= 20 and packet[0] >> 4 == 4:
                # A link that is down loses the packet, as a wire would.
                with contextlib.suppress(OSError):
                    out.sendto(packet, (socket.inet_ntoa(packet[16:20]), 0))

    threading.Thread(target=sender, daemon=True).start()
    print(f"slowlink: {dev} delay {delay * 1000:.0f}ms loss {loss:.1%}", flush=True)
    while True:
        select.select([tun], [], [])
        packet = os.read(tun, 65535)
        if random.random() < loss:
            continue
        with ready:
            seq += 1
            heapq.heappush(queue, (time.monotonic() + delay, seq, packet))
            ready.notify()


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]))
