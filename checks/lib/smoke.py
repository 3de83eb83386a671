#!/usr/bin/env python3
"""The Python side of the smoke checks (checks/smoke.sh, checks/loadgen-smoke.sh and
checks/lib/agent-run.sh): what a shell script cannot do well, one subcommand each.

  smoke.py free-udp-port                 a free loopback UDP port
  smoke.py send PORT SOCKET              smoke.udp.count:3|c over UDP to PORT and
                                         smoke.uds.gauge:42|g to the Unix socket SOCKET
                                         (the datadog client, else raw sockets)
  smoke.py udp PORT DATAGRAM             one raw datagram to 127.0.0.1:PORT
  smoke.py get URL                       the status code (0: no connection), then the body
  smoke.py expect-series URL HOST SPEC…  checks the test intake's /_intake/received at URL:
                                         SPEC is NAME,TYPE,TAG,SUM (TAG may be empty); exits 1
                                         saying what is missing while it does not hold yet
  smoke.py fields JSON KEY…              the values of KEYs in the JSON object, on one line
"""

import argparse
import json
import socket
import sys
import urllib.error
import urllib.request


def free_udp_port(_args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])


def send(args):
    try:
        from datadog.dogstatsd import DogStatsd

        DogStatsd(host="127.0.0.1", port=args.port, disable_telemetry=True).increment("smoke.udp.count", 3, tags=["transport:udp"])
        DogStatsd(socket_path=args.socket, disable_telemetry=True).gauge("smoke.uds.gauge", 42, tags=["transport:uds"])
        how = "the datadog Python client"
    except ImportError:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"smoke.udp.count:3|c|#transport:udp", ("127.0.0.1", args.port))
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"smoke.uds.gauge:42|g|#transport:uds", args.socket)
        how = "raw sockets (datadog client not installed)"
    print(f"smoke: sent smoke.udp.count:3|c over UDP and smoke.uds.gauge:42|g over {args.socket} with {how}")


def udp(args):
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(args.datagram.encode(), ("127.0.0.1", args.port))


def get(args):
    try:
        with urllib.request.urlopen(args.url, timeout=10) as r:
            print(r.status)
            print(r.read().decode())
    except urllib.error.HTTPError as e:
        print(e.code)
        print(e.read().decode())
    except OSError as e:
        print(0)
        print(e)


def expect_series(args):
    received = json.load(urllib.request.urlopen(args.url, timeout=10))
    for spec in args.specs:
        name, kind, tag, total = spec.split(",")
        series = [s for s in received["series"] if s["metric"] == name]
        if not series:
            sys.exit(f"{name}: not received yet")
        got = sum(p[1] for s in series for p in s["points"])
        for s in series:
            if s["type"] != kind:
                sys.exit(f"{name}: type {s['type']}, expected {kind}")
            if s["host"] != args.host:
                sys.exit(f"{name}: host {s['host']!r}, expected {args.host!r}")
            if tag and tag not in s["tags"]:
                sys.exit(f"{name}: tags {s['tags']}, expected {tag}")
        if abs(got - float(total)) > 1e-9:
            sys.exit(f"{name}: values sum to {got} so far, expecting {total}")
        print(f"smoke: ok: intake decoded {name} type={kind} host={args.host} tags={series[0]['tags']} sum={got}")
    if received["errors"]:
        sys.exit(f"the intake reports errors: {received['errors']}")


def fields(args):
    obj = json.loads(args.json)
    print(*(obj[k] for k in args.keys))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("free-udp-port").set_defaults(run=free_udp_port)
    p = sub.add_parser("send")
    p.add_argument("port", type=int)
    p.add_argument("socket")
    p.set_defaults(run=send)
    p = sub.add_parser("udp")
    p.add_argument("port", type=int)
    p.add_argument("datagram")
    p.set_defaults(run=udp)
    p = sub.add_parser("get")
    p.add_argument("url")
    p.set_defaults(run=get)
    p = sub.add_parser("expect-series")
    p.add_argument("url")
    p.add_argument("host")
    p.add_argument("specs", nargs="+", metavar="NAME,TYPE,TAG,SUM")
    p.set_defaults(run=expect_series)
    p = sub.add_parser("fields")
    p.add_argument("json")
    p.add_argument("keys", nargs="+")
    p.set_defaults(run=fields)
    args = ap.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
