#!/usr/bin/env python3
"""A scriptable XMPP client (slixmpp) for the real-peer tests.

Subcommands (all need --jid, --password and --server HOST:PORT; cleartext login on loopback):

  recv  log in, send available presence, print "READY <full jid>" once the server has
        processed it, then print one line per received message with a body and exit 0 after
        --count messages:  MESSAGE {"from": ..., "to": ..., "type": ..., "id": ..., "body": ...}
        --reply TEXT answers each message with TEXT.
  send  log in, send one message (--to, --body, --type), print "SENT {json}" and exit 0 once
        the server has processed it (an IQ round trip after the message).

Every line is flushed at once. Exit codes: 0 ok, 2 timeout (--timeout seconds for the whole
run), 3 login or connection failure, 4 error stanza received for the sent message.
"""
import argparse
import asyncio
import json
import logging
import sys

import slixmpp


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=("recv", "send"))
    ap.add_argument("--jid", required=True, help="user@domain[/resource]")
    ap.add_argument("--password", required=True)
    ap.add_argument("--server", required=True, help="HOST:PORT of the c2s listener")
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--count", type=int, default=1, help="recv: messages to wait for")
    ap.add_argument("--reply", help="recv: answer each message with this body")
    ap.add_argument("--to", help="send: recipient JID")
    ap.add_argument("--body", help="send: message body")
    ap.add_argument("--type", default="chat", help="send: message type")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    if a.command == "send" and (a.to is None or a.body is None):
        ap.error("send needs --to and --body")
    return a


def say(*parts):
    print(*parts, flush=True)


def message_json(m):
    return json.dumps({
        "from": str(m["from"]), "to": str(m["to"]), "type": m["type"],
        "id": m["id"], "body": m["body"],
    }, ensure_ascii=False)


async def run(a):
    loop = asyncio.get_running_loop()
    outcome = loop.create_future()

    def finish(code, line=None):
        if not outcome.done():
            if line:
                say(line)
            outcome.set_result(code)

    host, _, port = a.server.rpartition(":")
    client = slixmpp.ClientXMPP(a.jid, a.password)
    client.register_plugin("xep_0030")
    # Loopback test servers: plain TCP, SASL PLAIN allowed without TLS.
    client.enable_direct_tls = False
    client.enable_starttls = False
    client.enable_plaintext = True
    client.plugin["feature_mechanisms"].unencrypted_plain = True
    client.plugin["feature_mechanisms"].unencrypted_scram = True

    client.add_event_handler("failed_auth", lambda _: finish(3, "ERROR login failed for " + a.jid))
    client.add_event_handler("connection_failed", lambda e: finish(3, f"ERROR connection failed: {e}"))
    client.add_event_handler("disconnected", lambda _: finish(3, "ERROR disconnected before done"))

    received = 0

    def on_message(m):
        nonlocal received
        if m["type"] == "error":
            if a.command == "send":
                finish(4, "ERROR " + message_json(m) + " " + str(m["error"]["condition"]))
            return
        if not m["body"] or a.command != "recv":
            return
        received += 1
        say("MESSAGE " + message_json(m))
        if a.reply is not None:
            m.reply(a.reply).send()
        if received >= a.count:
            finish(0)

    client.add_event_handler("message", on_message)

    async def on_session(_):
        try:
            client.send_presence()
            # The roster IQ is answered after the server processed the presence before it.
            await client.get_roster(timeout=a.timeout)
            if a.command == "recv":
                say("READY " + str(client.boundjid))
                return
            msg = client.make_message(mto=a.to, mbody=a.body, mtype=a.type, mfrom=client.boundjid)
            msg.send()
            await client.get_roster(timeout=a.timeout)
            # Give an immediate error bounce a moment to arrive before declaring success.
            await asyncio.sleep(0.2)
            finish(0, "SENT " + message_json(msg))
        except Exception as e:  # IqTimeout, IqError
            finish(3, f"ERROR during session start: {e!r}")

    client.add_event_handler("session_start", on_session)
    client.connect(host, int(port))
    try:
        code = await asyncio.wait_for(outcome, a.timeout)
    except asyncio.TimeoutError:
        say(f"TIMEOUT after {a.timeout} s ({received} message(s) received)")
        code = 2
    try:
        await asyncio.wait_for(client.disconnect(wait=1.0), 3)
    except Exception:
        pass
    return code


def main():
    a = parse_args()
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.ERROR, stream=sys.stderr)
    sys.exit(asyncio.run(run(a)))


if __name__ == "__main__":
    main()
