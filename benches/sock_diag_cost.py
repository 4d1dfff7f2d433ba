#!/usr/bin/env python3
"""Where a sock_diag dump's time goes: the kernel's cost of one TCP listing by request kind,
and of a pass over many namespaces against one namespace with as many sockets.

Run as root (it makes network namespaces with unshare(CLONE_NEWNET); nothing on the host
changes: every sysctl written is a private namespace's own):

  python3 benches/sock_diag_cost.py requests [SOCKETS=100000] [ROUNDS=8]
      One namespace with SOCKETS client TIME_WAIT sockets; the listing portlab watch makes
      (legacy TCPDIAG_GETSOCK, both families in one walk, LISTEN|SYN_SENT|ESTABLISHED|
      TIME_WAIT), the same with an inet_diag bytecode filter that accepts every socket, one
      that keeps the ports 1024-65535, one that rejects every socket, a state mask no socket
      has (the walk alone), LISTEN alone, a 64 KiB receive buffer, and on a socket opened
      without CAP_NET_ADMIN (as portlab's is); rounds interleaved.
  python3 benches/sock_diag_cost.py namespaces NS PER [CHILD_EHASH=0]
      NS namespaces of PER TIME_WAIT sockets each, then a pass (one listing per namespace)
      timed three times. CHILD_EHASH > 0: the namespaces are made from a private parent whose
      net.ipv4.tcp_child_ehash_entries is CHILD_EHASH, so each gets a hash table of its own
      (Linux 6.1+); 0: they share the host's (the default).

Prints, per case, wall time, this process's system and user CPU (getrusage), and what came
back (sockets, recv() calls, bytes). TIME_WAIT lasts 60 s: everything is timed within it.
"""
import ctypes
import resource
import socket
import struct
import sys
import time

NETLINK_SOCK_DIAG = 4
TCPDIAG_GETSOCK = 18
NLMSG_ERROR, NLMSG_DONE = 2, 3
INET_DIAG_REQ_BYTECODE = 1
# include/net/tcp_states.h
LISTEN, SYN_SENT, ESTABLISHED, TIME_WAIT, SYN_RECV = 10, 2, 1, 6, 3
WATCH_STATES = (1 << LISTEN) | (1 << SYN_SENT) | (1 << ESTABLISHED) | (1 << TIME_WAIT)
CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def op(code, yes, no):
    """struct inet_diag_bc_op: u8 code, u8 yes, u16 no (jumps in bytes; past the end +4
    rejects)."""
    return struct.pack("=BBH", code, yes, no)


S_GE, S_LE = 2, 3
ACCEPT_ALL = op(S_GE, 8, 12) + op(0, 0, 0)
REJECT_ALL = op(S_LE, 8, 12) + op(0, 0, 0)  # local port <= 0: no socket
PORTS_1024_65535 = op(S_GE, 8, 20) + op(0, 0, 1024) + op(S_LE, 8, 12) + op(0, 0, 65535)


def request(states, bytecode=b""):
    """struct inet_diag_req (legacy, 60 bytes), states at offset 52, then the filter."""
    req = bytearray(60)
    struct.pack_into("=I", req, 52, states)
    if bytecode:
        req += struct.pack("=HH", 4 + len(bytecode), INET_DIAG_REQ_BYTECODE) + bytecode
    return bytes(req)


class Lister:
    """A NETLINK_SOCK_DIAG socket, bound to the namespace current when it was made.
    without_net_admin: opened with CAP_NET_ADMIN out of the thread's effective set, as
    portlab's lister is (the kernel then leaves out the INET_DIAG_MARK attribute)."""

    def __init__(self, without_net_admin=False):
        caps = None
        if without_net_admin:
            header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
            data = (ctypes.c_uint32 * 6)()
            if libc.syscall(125, header, data) == 0:  # capget
                caps = (header, data, data[0])
                data[0] &= ~(1 << 12)  # CAP_NET_ADMIN
                libc.syscall(126, header, data)  # capset
        self.s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
        if caps:
            header, data, effective = caps
            data[0] = effective
            if libc.syscall(126, header, data) != 0:
                sys.exit("capset: could not restore the effective capabilities")
        self.seq = 0

    def dump(self, payload, bufsize=32768):
        self.seq += 1
        hdr = struct.pack("=IHHII", 16 + len(payload), TCPDIAG_GETSOCK, 0x301, self.seq, 0)
        self.s.send(hdr + payload)
        n = recvs = size = 0
        while True:
            d = self.s.recv(bufsize)
            recvs += 1
            size += len(d)
            off = 0
            while off + 16 <= len(d):
                length, ty = struct.unpack_from("=IH", d, off)
                if ty == NLMSG_DONE:
                    return n, recvs, size
                if ty == NLMSG_ERROR:
                    raise OSError(-struct.unpack_from("=i", d, off + 16)[0], "sock_diag")
                n += 1
                off += (length + 3) & ~3


def new_namespace(child_ehash=0):
    if libc.unshare(CLONE_NEWNET) != 0:
        sys.exit(f"unshare(CLONE_NEWNET): errno {ctypes.get_errno()} (run as root)")
    # lo up through ioctl-free means: the ip tool, run in this thread's namespace.
    import subprocess

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for name, value in (
        ("ip_local_port_range", "1024 65535"),
        ("tcp_max_tw_buckets", "1000000"),
    ) + ((("tcp_child_ehash_entries", str(child_ehash)),) if child_ehash else ()):
        with open(f"/proc/sys/net/ipv4/{name}", "w") as f:
            f.write(value)


def make_time_wait(n):
    """n client-side TIME_WAIT sockets toward two listeners; returns the listeners."""
    listeners = []
    for port in (1000, 1001):
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", port))
        ls.listen(4096)
        listeners.append(ls)
    for i in range(n):
        c = socket.socket()
        # Explicit sources and ports: connect() would scan past every TIME_WAIT.
        c.bind((f"127.0.1.{i // 60000 + 1}", 2000 + i % 60000))
        c.connect(("127.0.0.1", 1000 + i % 2))
        s, _ = listeners[i % 2].accept()
        c.close()  # the client closes first: TIME_WAIT is its
        s.recv(16)
        s.close()
    return listeners


def timed(f):
    u0, s0 = cpu()
    t0 = time.perf_counter()
    res = f()
    t1 = time.perf_counter()
    u1, s1 = cpu()
    return (t1 - t0) * 1000, (s1 - s0) * 1000, (u1 - u0) * 1000, res


def requests(n, rounds):
    new_namespace()
    began = time.time()
    keep = make_time_wait(n)
    print(f"{n} TIME_WAIT sockets made in {time.time() - began:.1f} s", flush=True)
    lister = Lister()
    plain = Lister(without_net_admin=True)
    cases = [
        ("watch's listing, no filter", lambda: lister.dump(request(WATCH_STATES))),
        ("bytecode: accept every socket", lambda: lister.dump(request(WATCH_STATES, ACCEPT_ALL))),
        ("bytecode: ports 1024-65535", lambda: lister.dump(request(WATCH_STATES, PORTS_1024_65535))),
        ("bytecode: reject every socket", lambda: lister.dump(request(WATCH_STATES, REJECT_ALL))),
        ("states: SYN_RECV only (walk)", lambda: lister.dump(request(1 << SYN_RECV))),
        ("states: LISTEN only", lambda: lister.dump(request(1 << LISTEN))),
        ("no filter, 64 KiB recv buffer", lambda: lister.dump(request(WATCH_STATES), 65536)),
        ("no filter, without CAP_NET_ADMIN", lambda: plain.dump(request(WATCH_STATES))),
    ]
    totals = {name: [0.0, 0.0, 0.0, None] for name, _ in cases}
    for _ in range(rounds):
        for name, f in cases:
            wall, sys_ms, user_ms, res = timed(f)
            t = totals[name]
            t[0] += wall / rounds
            t[1] += sys_ms / rounds
            t[2] += user_ms / rounds
            t[3] = res
    for name, (wall, sys_ms, user_ms, res) in totals.items():
        print(
            f"{name:32s} wall {wall:7.2f} ms  system {sys_ms:6.2f}  user {user_ms:6.2f}"
            f"  (sockets, recvs, bytes) {res}"
        )
    del keep


def namespaces(ns, per, child_ehash):
    if child_ehash:
        # A private parent, so each namespace made below gets its own hash; each namespace
        # sets it too, since the next one is made from it.
        new_namespace(child_ehash)
    listers, keep = [], []
    began = time.time()
    for _ in range(ns):
        new_namespace(child_ehash)
        keep.append(make_time_wait(per))
        listers.append(Lister())
    with open("/proc/sys/net/ipv4/tcp_ehash_entries") as f:
        ehash = f.read().strip()
    print(
        f"{ns} namespaces x {per} TIME_WAIT sockets made in {time.time() - began:.1f} s;"
        f" tcp_ehash_entries of the last: {ehash} (negative: the host's, shared)",
        flush=True,
    )
    for label, states in (("watch's listing", WATCH_STATES), ("walk only", 1 << SYN_RECV)):
        for _ in range(3):
            wall, sys_ms, user_ms, n = timed(lambda: sum(l.dump(request(states))[0] for l in listers))
            print(
                f"{label:16s} pass over {ns} namespaces: wall {wall:8.2f} ms  system"
                f" {sys_ms:8.2f}  user {user_ms:6.2f}  sockets {n}",
                flush=True,
            )


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["requests"]:
        requests(int(args[1]) if len(args) > 1 else 100000, int(args[2]) if len(args) > 2 else 8)
    elif args[:1] == ["namespaces"] and len(args) >= 3:
        namespaces(int(args[1]), int(args[2]), int(args[3]) if len(args) > 3 else 0)
    else:
        sys.exit(__doc__)
