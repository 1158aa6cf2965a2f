"""Delay and jitter without netem: packets held in user space through an NFQUEUE, then let go.

netem, the kernel's delay line, is a module many kernels lack (this
project's CI machine's among them). Netfilter's queue is nearly always
there: an iptables rule sends the packets a node sends from its ports to
queue N, and this process, bound to it over netlink, receives each one's
id (only its metadata: nothing is copied), waits until its time has come
(``delay_ms`` plus a uniform draw within ``jitter_ms``) and accepts it. A
packet's release is never before the one queued ahead of it, so jitter
does not reorder a stream (netem's own jitter does unless told not to).
Should this process die, the rule's ``--queue-bypass`` lets packets through
unqueued instead of dropping them.

Run as ``python -m alertbench.bench.faults.delayer --queue N --delay-ms D
--jitter-ms J``; it writes ``ready`` to its standard output once bound, and
on SIGTERM lets every packet it holds go before it exits, then prints how
many it held.

The protocol is nfnetlink_queue's (linux/netfilter/nfnetlink_queue.h):
configuration messages bind the queue and set the copy mode, each queued
packet arrives as a message with its id, and a verdict message accepts it.
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQNL_CFG_CMD_BIND = 1
NFQNL_CFG_CMD_UNBIND = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQNL_COPY_META = 1
NF_ACCEPT = 1
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
#: Packets the kernel may hold for us before it lets more through unqueued (--queue-bypass).
QUEUE_MAXLEN = 65536


def _attr(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    return struct.pack("=HH", size, kind) + payload + b"\0" * (-size % 4)


def _message(kind: int, queue: int, attrs: bytes, seq: int, flags: int = NLM_F_REQUEST) -> bytes:
    # nfgenmsg: family (AF_UNSPEC), version 0, the queue number (big-endian).
    body = struct.pack("!BBH", socket.AF_UNSPEC, 0, queue) + attrs
    return (
        struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, flags, seq, 0) + body
    )


class Queue:
    """A netfilter queue bound over netlink: packets' ids in, verdicts out."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 2**20)
        self.sock.bind((0, 0))
        self._seq = 0
        self._config(_attr(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, 0)))
        # nfqnl_msg_config_params, packed: copy_range 0, copy mode META (ids, no payload).
        self._config(_attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)))
        self._config(_attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", QUEUE_MAXLEN)))

    def _config(self, attrs: bytes) -> None:
        self._seq += 1
        self.sock.send(
            _message(NFQNL_MSG_CONFIG, self.number, attrs, self._seq, NLM_F_REQUEST | NLM_F_ACK)
        )
        # The kernel's answer: an error message whose code 0 means done.
        data = self.sock.recv(65536)
        _length, kind = struct.unpack_from("=IH", data)
        if kind == NLMSG_ERROR:
            (code,) = struct.unpack_from("=i", data, 16)
            if code != 0:
                raise OSError(-code, f"binding netfilter queue {self.number}: {os.strerror(-code)}")

    def packets(self) -> list[int]:
        """The ids of the packets waiting on the socket now (at least one: it blocks)."""
        ids = []
        data = self.sock.recv(1 << 20)
        offset = 0
        while offset + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, offset)
            if length < 16:
                break
            if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                at = offset + 20  # past nlmsghdr and nfgenmsg
                end = offset + length
                while at + 4 <= end:
                    size, attr = struct.unpack_from("=HH", data, at)
                    if size < 4:
                        break
                    if attr & 0x7FFF == NFQA_PACKET_HDR:
                        ids.append(struct.unpack_from("!I", data, at + 4)[0])
                    at += size + (-size % 4)
            offset += length + (-length % 4)
        return ids

    def accept(self, packet_id: int) -> None:
        """Let the packet go."""
        self._seq += 1
        verdict = _attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id))
        self.sock.send(_message(NFQNL_MSG_VERDICT, self.number, verdict, self._seq))

    def close(self) -> None:
        """Unbind and close."""
        try:
            self._config(_attr(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_UNBIND, 0, 0)))
        finally:
            self.sock.close()


def run(number: int, delay_s: float, jitter_s: float, rng: random.Random) -> int:
    """Hold every packet of queue ``number`` for its time; returns how many it held."""
    queue = Queue(number)
    stop = False

    def on_term(_sig, _frame) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    print("ready", flush=True)
    held: list[tuple[float, int]] = []  # (release time, id), a heap
    last = 0.0
    count = 0
    try:
        while not stop:
            now = time.monotonic()
            while held and held[0][0] <= now:
                queue.accept(heapq.heappop(held)[1])
            wait = max(held[0][0] - now, 0.0) if held else 0.5
            ready, _, _ = select.select([queue.sock], [], [], wait)
            if not ready:
                continue
            arrived = time.monotonic()
            for packet_id in queue.packets():
                due = arrived + delay_s + (rng.uniform(-jitter_s, jitter_s) if jitter_s else 0.0)
                last = max(due, last)  # never ahead of the packet before it
                heapq.heappush(held, (last, packet_id))
                count += 1
    finally:
        for _, packet_id in sorted(held):
            queue.accept(packet_id)
        queue.close()
    return count


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--queue N --delay-ms D [--jitter-ms J] [--seed S]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    if args.jitter_ms > args.delay_ms:
        sys.exit("jitter_ms must not exceed delay_ms: a packet cannot leave before it came")
    held = run(args.queue, args.delay_ms / 1000, args.jitter_ms / 1000, random.Random(args.seed))
    print(f"held {held}", flush=True)


if __name__ == "__main__":
    main()
