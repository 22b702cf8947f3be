#!/usr/bin/env python3
"""Open N keep-alive HTTP/1.1 connections to a proxy, one request each, then hold them idle.

bench/run.sh uses this to measure what an idle client connection costs a proxy in memory.
Standard library only, so it runs anywhere python3 does.

Protocol with the caller (one line each on stdout):
  ready <opened> <failed> <seconds>   all connections are open and each got its response
  open <n>                            after --hold seconds: how many the server still kept open
Exit status is 0 when every connection was opened and answered, 1 otherwise.
"""
import argparse
import resource
import select
import socket
import sys
import time


def read_response(sock):
    """Read one HTTP/1.1 response (Content-Length or chunked body); return the status code."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("connection closed before the response headers")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length, chunked = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    # Good enough for the tiny bodies the benchmark upstream sends: read to the end marker.
    while (chunked and not body.endswith(b"0\r\n\r\n")) or (not chunked and len(body) < length):
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("connection closed inside the response body")
        body += chunk
    return status


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--path", default="/")
    ap.add_argument("--hold", type=float, default=5.0, help="seconds to hold the connections after 'ready'")
    args = ap.parse_args()

    # Each connection is one file descriptor; raise the soft limit as far as the hard one allows.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.count + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))

    request = (f"GET {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n"
               "User-Agent: floodgate-bench-idle\r\n\r\n").encode()
    socks, failed = [], 0
    start = time.monotonic()
    # One connection at a time: a request/response round trip per socket keeps the proxy's
    # accept queue short, so no SYN is dropped and retried a second later.
    for _ in range(args.count):
        s = None
        try:
            s = socket.create_connection((args.host, args.port), timeout=10)
            s.sendall(request)
            status = read_response(s)
            if status != 200:
                raise ConnectionError(f"status {status}")
            socks.append(s)
        except OSError as e:  # ConnectionError is an OSError
            failed += 1
            if s is not None:
                s.close()
            if failed <= 3:
                print(f"error: {e}", file=sys.stderr)
            if failed > max(10, args.count // 100):
                print("too many failures, giving up", file=sys.stderr)
                break
    print(f"ready {len(socks)} {failed} {time.monotonic() - start:.2f}", flush=True)

    time.sleep(args.hold)

    # A connection the server closed is readable (EOF) or hung up; poll() has no FD_SETSIZE limit.
    poller = select.poll()
    for s in socks:
        poller.register(s, select.POLLIN | select.POLLHUP | select.POLLERR)
    closed = len(poller.poll(0))
    print(f"open {len(socks) - closed}", flush=True)
    for s in socks:
        s.close()
    return 0 if failed == 0 and closed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
