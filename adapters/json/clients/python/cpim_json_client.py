#!/usr/bin/env python3
"""A minimal client of the CPIM gateway JSON protocol, version 1 (see ../../PROTOCOL.md).

Standard library only: newline-delimited JSON over TCP. Usable as a module
(`CpimJsonClient`) or from the command line:

    cpim_json_client.py --host 127.0.0.1 --port 7700 --token SECRET \
        --to sip:bob@example.com --text "hello" [--wait-one]

It logs in, optionally sends one message and prints its outcome, and with --wait-one
waits for one operation delivered to it, prints it and answers it with outcome 200.
"""

import argparse
import base64
import itertools
import json
import socket
import sys

VERSION = 1


class ProtocolError(Exception):
    """The server sent an error frame or closed the connection."""


class CpimJsonClient:
    def __init__(self, host, port, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.reader = self.sock.makefile("rb")
        self.ids = itertools.count(1)
        self.addresses = []

    def send(self, frame):
        self.sock.sendall(json.dumps(frame, separators=(",", ":")).encode("utf-8") + b"\n")

    def recv(self):
        line = self.reader.readline()
        if not line:
            raise ProtocolError("connection closed by server")
        return json.loads(line)

    def hello(self, token):
        self.send({"type": "hello", "version": VERSION, "token": token})
        frame = self.recv()
        if frame.get("type") != "welcome":
            raise ProtocolError("login refused: %s" % frame)
        self.addresses = frame["addresses"]
        return frame

    def _next_id(self):
        return "c%d" % next(self.ids)

    def message(self, to, body, content_type="text/plain;charset=UTF-8", headers=None):
        """Sends a message and returns its id; the outcome arrives later."""
        frame = {"type": "message", "id": self._next_id(), "to": to, "content_type": content_type}
        if isinstance(body, bytes):
            frame["body"] = base64.b64encode(body).decode("ascii")
            frame["encoding"] = "base64"
        else:
            frame["body"] = body
        if headers:
            frame["headers"] = headers
        self.send(frame)
        return frame["id"]

    def publish(self, basic="open", note=None, activities=()):
        frame = {"type": "publish", "id": self._next_id(), "basic": basic}
        if note is not None:
            frame["note"] = note
        if activities:
            frame["activities"] = list(activities)
        self.send(frame)
        return frame["id"]

    def subscribe(self, to, expires=3600):
        frame = {"type": "subscribe", "id": self._next_id(), "to": to, "expires": expires}
        self.send(frame)
        return frame["id"]

    def wait_outcome(self, frame_id):
        """Reads frames until the outcome (or error) for frame_id; returns (code, reason)."""
        while True:
            frame = self.recv()
            if frame.get("type") in ("outcome", "error") and frame.get("id") == frame_id:
                return frame["code"], frame.get("reason", "")
            self.handle_other(frame)

    def handle_other(self, frame):
        """Answers operations the server delivers: every one gets an outcome."""
        kind = frame.get("type")
        if kind in ("message", "notify", "subscribe", "unsubscribe"):
            self.send({"type": "outcome", "id": frame["id"], "code": 200, "reason": "OK"})
        elif kind == "ping":
            self.send({"type": "pong", "id": frame.get("id")})
        return frame

    def close(self):
        self.reader.close()
        self.sock.close()


def body_text(frame):
    if frame.get("encoding") == "base64":
        return base64.b64decode(frame["body"]).decode("utf-8", "replace")
    return frame["body"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7700)
    ap.add_argument("--token", required=True)
    ap.add_argument("--to")
    ap.add_argument("--text")
    ap.add_argument("--wait-one", action="store_true")
    args = ap.parse_args(argv)

    client = CpimJsonClient(args.host, args.port)
    try:
        welcome = client.hello(args.token)
        print("logged in as %s" % ", ".join(welcome["addresses"]), flush=True)
        if args.to and args.text is not None:
            fid = client.message(args.to, args.text)
            code, reason = client.wait_outcome(fid)
            print("outcome %d %s" % (code, reason), flush=True)
        if args.wait_one:
            while True:
                frame = client.recv()
                client.handle_other(frame)
                if frame.get("type") == "message":
                    print("message from %s: %s" % (frame.get("from"), body_text(frame)), flush=True)
                    break
                if frame.get("type") == "notify":
                    print("notify from %s: %s" % (frame.get("from"), frame.get("presence")), flush=True)
                    break
    except (ProtocolError, OSError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
