#!/usr/bin/env python3
"""A long-running slixmpp client driven through stdin, for end-to-end tests (cpim-testkit's
`XmppClient` runs it).

Usage: xmpp_agent.py --jid USER@DOMAIN[/RES] --password PW --server HOST:PORT [--no-presence]

It logs in (cleartext on loopback), sends its initial available presence unless --no-presence,
and prints one line per event, flushed at once:  EVENT {json}

  {"event": "ready", "jid": FULL_JID}            after login and a roster round trip
  {"event": "message", "from", "to", "type", "id", "body", "error"}   every message stanza
                                                  (bounces: type "error", error = condition)
  {"event": "presence", "from", "to", "type", "show", "status", "priority", "error"}
                                                  every presence stanza (type "available"
                                                  for an available presence)
  {"event": "done", "seq": N}                     command N was written (after a server round
                                                  trip for "sync")
  {"event": "failed", "reason": TEXT}             login/connection failure (exit 3)

Commands, one JSON object per stdin line, each with an optional "seq":

  {"cmd": "message", "to": JID, "body": TEXT, "type": "chat", "id": ID}
  {"cmd": "presence", "to": JID?, "type": "subscribe|subscribed|unsubscribe|unsubscribed|
                                           unavailable|probe"?, "show": ?, "status": ?}
  {"cmd": "roster_remove", "jid": JID}            remove the contact (ends both directions)
  {"cmd": "sync"}                                 an IQ round trip (an ordering barrier)
  {"cmd": "quit"}                                 unavailable presence, disconnect, exit 0

Subscription requests are never answered automatically: the test decides. End of stdin is
"quit".
"""
import argparse
import asyncio
import json
import logging
import sys
import threading

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath


def say(obj):
    print("EVENT " + json.dumps(obj, ensure_ascii=False), flush=True)


def error_condition(stanza):
    if stanza["type"] != "error":
        return None
    return str(stanza["error"]["condition"]) or "undefined-condition"


async def run(a):
    loop = asyncio.get_running_loop()
    finished = loop.create_future()
    commands = asyncio.Queue()

    def stdin_reader():
        for line in sys.stdin:
            line = line.strip()
            if line:
                loop.call_soon_threadsafe(commands.put_nowait, line)
        loop.call_soon_threadsafe(commands.put_nowait, None)

    host, _, port = a.server.rpartition(":")
    client = slixmpp.ClientXMPP(a.jid, a.password)
    client.register_plugin("xep_0030")
    client.enable_direct_tls = False
    client.enable_starttls = False
    client.enable_plaintext = True
    client.plugin["feature_mechanisms"].unencrypted_plain = True
    client.plugin["feature_mechanisms"].unencrypted_scram = True
    client.auto_authorize = None
    client.auto_subscribe = False

    def fail(reason):
        if not finished.done():
            say({"event": "failed", "reason": reason})
            finished.set_result(3)

    client.add_event_handler("failed_auth", lambda _: fail("login failed for " + a.jid))
    client.add_event_handler("connection_failed", lambda e: fail(f"connection failed: {e}"))
    client.add_event_handler("disconnected", lambda _: fail("disconnected"))

    def on_message(m):
        if m["type"] == "error":
            return  # reported once, by on_message_error
        say({
            "event": "message", "from": str(m["from"]), "to": str(m["to"]),
            "type": m["type"], "id": m["id"], "body": m["body"],
            "error": error_condition(m), "xml": str(m),
        })

    def on_presence(p):
        ptype = p["type"]
        if ptype in ("", None) or ptype in ("chat", "away", "xa", "dnd"):
            ptype = "available"
        say({
            "event": "presence", "from": str(p["from"]), "to": str(p["to"]),
            "type": ptype, "show": p["show"] or None, "status": p["status"] or None,
            "priority": p["priority"], "error": error_condition(p),
        })

    def on_message_error(m):
        say({
            "event": "message", "from": str(m["from"]), "to": str(m["to"]),
            "type": "error", "id": m["id"], "body": m["body"],
            "error": error_condition(m),
        })

    client.add_event_handler("message", on_message)

    # slixmpp raises "message" only for stanzas with a body; receipts (XEP-0184), markers
    # (XEP-0333) and chat states come without one.
    def on_bodiless(m):
        if m["type"] != "error" and not m["body"]:
            on_message(m)

    client.register_handler(Callback(
        "bodiless messages", MatchXPath("{jabber:client}message"), on_bodiless))
    # slixmpp reports bounces (with or without a body) as "message_error".
    client.add_event_handler("message_error", on_message_error)
    client.add_event_handler("presence", on_presence)

    async def handle(cmd):
        kind = cmd.get("cmd")
        if kind == "message":
            msg = client.make_message(mto=cmd["to"], mbody=cmd["body"],
                                      mtype=cmd.get("type", "chat"))
            if cmd.get("id"):
                msg["id"] = cmd["id"]
            msg.send()
        elif kind == "raw":
            client.send_raw(cmd["xml"])
        elif kind == "presence":
            p = client.make_presence(pto=cmd.get("to"), ptype=cmd.get("type"),
                                     pshow=cmd.get("show"), pstatus=cmd.get("status"))
            p.send()
        elif kind == "roster_remove":
            await client.del_roster_item(cmd["jid"])
        elif kind == "sync":
            await client.get_roster(timeout=20)
        elif kind == "quit":
            return False
        else:
            raise ValueError(f"unknown command {kind!r}")
        return True

    async def on_session(_):
        try:
            if not a.no_presence:
                client.send_presence()
            await client.get_roster(timeout=20)
            say({"event": "ready", "jid": str(client.boundjid)})
            threading.Thread(target=stdin_reader, daemon=True).start()
            while True:
                line = await commands.get()
                if line is None:
                    break
                cmd = json.loads(line)
                keep_going = await handle(cmd)
                say({"event": "done", "seq": cmd.get("seq")})
                if not keep_going:
                    break
            client.send_presence(ptype="unavailable")
            await client.get_roster(timeout=5)
            if not finished.done():
                finished.set_result(0)
        except Exception as e:  # IqTimeout, IqError, bad command
            fail(f"{e!r}")

    client.add_event_handler("session_start", on_session)
    client.connect(host, int(port))
    code = await finished
    try:
        await asyncio.wait_for(client.disconnect(wait=1.0), 3)
    except Exception:
        pass
    return code


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jid", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--server", required=True, help="HOST:PORT of the c2s listener")
    ap.add_argument("--no-presence", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.ERROR, stream=sys.stderr)
    sys.exit(asyncio.run(run(a)))


if __name__ == "__main__":
    main()
