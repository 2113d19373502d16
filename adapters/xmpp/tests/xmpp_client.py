#!/usr/bin/env python3
"""A scriptable XMPP client for the adapter's real-peer tests (slixmpp).

Usage: xmpp_client.py HOST:PORT JID PASSWORD
Reads JSON commands on stdin, one per line:
  {"op": "message", "to": JID, "body": TEXT, "id": ID?, "type": "chat"?}
  {"op": "presence", "to": JID?, "type": TYPE?, "status": TEXT?}
  {"op": "quit"}
Writes JSON events on stdout, one per line:
  {"ev": "ready"}
  {"ev": "message", "from": JID, "to": JID, "type": T, "body": TEXT, "id": ID}
  {"ev": "presence", "from": JID, "to": JID, "type": T, "status": TEXT}
Subscription requests are approved automatically (slixmpp's roster defaults).
"""
import asyncio
import json
import sys

import slixmpp


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def main():
    hostport, jid, password = sys.argv[1], sys.argv[2], sys.argv[3]
    host, port = hostport.rsplit(":", 1)
    c = slixmpp.ClientXMPP(jid, password)
    c.plugin["feature_mechanisms"].unencrypted_plain = True
    c.plugin["feature_mechanisms"].unencrypted_scram = True
    c.enable_direct_tls = False
    c.enable_starttls = False
    c.enable_plaintext = True
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    async def start(_):
        await c.get_roster()
        c.send_presence()
        if not ready.done():
            ready.set_result(True)

    c.add_event_handler("session_start", start)
    def msg(m):
        out({"ev": "message", "from": str(m["from"]), "to": str(m["to"]),
             "type": m["type"], "body": m["body"], "id": m["id"],
             "error": m["error"]["condition"] if m["type"] == "error" else None})
    c.add_event_handler("message", msg)
    c.add_event_handler("message_error", msg)

    def pres(p):
        out({"ev": "presence", "from": str(p["from"]), "to": str(p["to"]),
             "type": p["type"], "status": p["status"]})
    c.add_event_handler("presence", pres)
    c.connect(host, int(port))
    await asyncio.wait_for(ready, 15)
    out({"ev": "ready"})
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        if cmd["op"] == "message":
            m = c.make_message(mto=cmd["to"], mbody=cmd["body"], mtype=cmd.get("type", "chat"))
            if "id" in cmd:
                m["id"] = cmd["id"]
            m.send()
        elif cmd["op"] == "presence":
            kw = {}
            if cmd.get("to"):
                kw["pto"] = cmd["to"]
            if cmd.get("type"):
                kw["ptype"] = cmd["type"]
            if cmd.get("status"):
                kw["pstatus"] = cmd["status"]
            c.send_presence(**kw)
        elif cmd["op"] == "quit":
            break
        out({"ev": "done", "op": cmd["op"]})
    c.disconnect()
    await asyncio.sleep(0.3)


asyncio.run(main())
