#!/usr/bin/env python3
"""Call fleet services and list members through a middlecon's gRPC API, from Python.

    middlecon_client.py --api 10.0.0.5:7442 --cert admin.crt --key admin.key --ca ca.crt \\
        call --host host-1 example.echo hello
    middlecon_client.py --api unix:/run/middlecon/api.sock members

`--api` is HOST:PORT (TLS, the fleet CA's certificates: cert/key/ca files, or DCOS_CERT,
DCOS_KEY, DCOS_CA) or unix:PATH (a middlecon's local socket, no certificates needed).

The Python code for the API is generated from proto/middlecon/v1/*.proto with grpcio-tools
into a temporary directory each time this runs (about 10 ms), so it can never
be out of date with the .proto files. --proto DIR (or MIDDLECON_PROTO) says where the
`middlecon/v1/*.proto` files are; by default, the repository's proto/ directory.

`call` prints the reply's payload on stdout and the outcome on stderr. Exit status: 0 when
the outcome is ok; 1 for any other outcome, named on stderr (`no_responders: ...`), or
when the API cannot be reached (`unreachable: ...`); 2 for bad usage.
"""

import argparse
import importlib
import os
import sys
import tempfile
import time

import grpc
from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PROTO = os.path.join(HERE, "..", "..", "proto")
PROTOS = ["middlecon/v1/peer.proto", "middlecon/v1/middlecon.proto"]


def fail(outcome, message):
    """Says what went wrong, as `outcome: message` on stderr, and exits 1."""
    print(f"{outcome}: {message}", file=sys.stderr)
    sys.exit(1)


def generate(proto_dir, out_dir):
    """Generates middlecon/v1/*_pb2.py and *_pb2_grpc.py into out_dir; imports them."""
    for p in PROTOS:
        if not os.path.isfile(os.path.join(proto_dir, p)):
            print(f"usage: {p} is not under {proto_dir} (give --proto DIR)", file=sys.stderr)
            sys.exit(2)
    args = ["protoc", f"-I{proto_dir}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}"]
    if protoc.main(args + PROTOS) != 0:
        print(f"cannot generate Python code from {proto_dir}", file=sys.stderr)
        sys.exit(1)
    # The generated modules import each other as `middlecon.v1.*`.
    sys.path.insert(0, out_dir)
    pb = importlib.import_module("middlecon.v1.middlecon_pb2")
    rpc = importlib.import_module("middlecon.v1.middlecon_pb2_grpc")
    peer = importlib.import_module("middlecon.v1.peer_pb2")
    return pb, rpc, peer


def channel(args):
    """A channel to the API: the local socket as it is, TCP with mTLS."""
    if args.api.startswith("unix:"):
        # gRPC would send the socket's path, percent-encoded, as the HTTP/2 :authority,
        # which middlecon's HTTP/2 server refuses as malformed (the call is reset with
        # PROTOCOL_ERROR); any plain name will do.
        return grpc.insecure_channel(args.api, options=[("grpc.default_authority", "localhost")])
    files = {}
    for name, env in (("cert", "DCOS_CERT"), ("key", "DCOS_KEY"), ("ca", "DCOS_CA")):
        path = getattr(args, name) or os.environ.get(env)
        if not path:
            need = f"usage: --{name} FILE (or {env}) is needed for --api {args.api}"
            print(need, file=sys.stderr)
            sys.exit(2)
        try:
            with open(path, "rb") as f:
                files[name] = f.read()
        except OSError as e:
            print(f"usage: --{name}: {e}", file=sys.stderr)
            sys.exit(2)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=files["ca"], private_key=files["key"], certificate_chain=files["cert"]
    )
    return grpc.secure_channel(args.api, credentials)


def outcome_name(peer, value):
    """OUTCOME_NO_RESPONDERS -> no_responders, the names SPEC section 4 uses."""
    try:
        return peer.Outcome.Name(value).removeprefix("OUTCOME_").lower()
    except ValueError:
        return f"outcome_{value}"


def rpc_failed(args, e):
    """A gRPC error (no reply at all): unreachable, or the API's refusal."""
    if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        fail("unreachable", f"no answer from the middlecon API at {args.api}: {e.details()}")
    fail(e.code().name.lower(), e.details())


def call(args, pb, rpc, peer):
    target = pb.Target(any=True)
    if args.host:
        target = pb.Target(host=args.host)
    elif args.dc:
        target = pb.Target(dc=args.dc)
    deadline_ms = int((time.time() + args.timeout) * 1000)
    request = pb.CallRequest(
        service=args.service,
        target=target,
        deadline_unix_ms=deadline_ms,
        # The argument as the bytes it was given (os.fsencode keeps non-UTF-8 bytes).
        payload=os.fsencode(args.data),
    )
    started = time.monotonic()
    with channel(args) as ch:
        try:
            # The API answers by the deadline; allow a little more for the way back.
            reply = rpc.MessagingStub(ch).Call(request, timeout=args.timeout + 0.5)
        except grpc.RpcError as e:
            rpc_failed(args, e)
    took_ms = (time.monotonic() - started) * 1000
    outcome = outcome_name(peer, reply.outcome)
    if outcome != "ok":
        fail(outcome, reply.message or "(no message)")
    sys.stdout.buffer.write(reply.payload)
    sys.stdout.flush()
    took = f"{took_ms:.1f} ms, connecting included"
    print(f"ok: {args.service} answered by {reply.responder} in {took}", file=sys.stderr)


def members(args, pb, rpc, peer):
    with channel(args) as ch:
        try:
            reply = rpc.MembershipStub(ch).Members(pb.MembersRequest(), timeout=args.timeout)
        except grpc.RpcError as e:
            rpc_failed(args, e)
    print(f"{'NAME':<16} {'DC':<10} {'STATE':<8} {'PEER':<22} {'API':<22} LOAD")
    for m in reply.members:
        state = pb.MemberState.Name(m.state).removeprefix("MEMBER_STATE_").lower()
        load = "-" if m.load < 0 else f"{m.load:.2f}"
        dc, addr, api = m.dc or "-", m.addr or "-", m.api or "-"
        print(f"{m.name:<16} {dc:<10} {state:<8} {addr:<22} {api:<22} {load}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", required=True, help="HOST:PORT (mTLS) or unix:PATH")
    parser.add_argument("--cert", help="your certificate, PEM (default: $DCOS_CERT)")
    parser.add_argument("--key", help="its private key, PEM (default: $DCOS_KEY)")
    parser.add_argument("--ca", help="the fleet CA certificate, PEM (default: $DCOS_CA)")
    parser.add_argument("--proto", default=os.environ.get("MIDDLECON_PROTO", DEFAULT_PROTO),
                        help="the directory holding middlecon/v1/*.proto")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    commands = parser.add_subparsers(dest="command", required=True)
    c = commands.add_parser("call", help="one request to a service (Messaging.Call)")
    where = c.add_mutually_exclusive_group()
    where.add_argument("--host", help="the host that should answer")
    where.add_argument("--dc", help="any host of this datacenter")
    c.add_argument("service")
    c.add_argument("data", nargs="?", default="", help="the payload (default: empty)")
    commands.add_parser("members", help="the fleet as this middlecon sees it (Membership.Members)")
    args = parser.parse_args()
    if args.timeout <= 0:
        parser.error("--timeout must be more than zero")

    with tempfile.TemporaryDirectory(prefix="middlecon-py-") as out_dir:
        pb, rpc, peer = generate(os.path.abspath(args.proto), out_dir)
        {"call": call, "members": members}[args.command](args, pb, rpc, peer)


if __name__ == "__main__":
    main()
