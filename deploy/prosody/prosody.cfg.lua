-- Prosody for deploy/compose.yaml: the XMPP domain xmpp.test with the gateway as the
-- external component sip.xmpp.test (XEP-0114).
pidfile = "/run/prosody/prosody.pid"
daemonize = false
log = { { levels = { min = "info" }, to = "console" } }

interfaces = { "*" }
c2s_ports = { 5222 }
component_ports = { 5347 }
component_interfaces = { "*" }

modules_enabled = {
  "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "presence"; "message";
  "iq"; "private"; "version"; "uptime"; "time";
}

authentication = "internal_hashed"
allow_registration = false
-- A test deployment on a private network; use certificates and require TLS in production.
c2s_require_encryption = false
s2s_require_encryption = false

VirtualHost "xmpp.test"

Component "sip.xmpp.test"
  -- Shared with the gateway (compose.yaml passes it to both); no default.
  component_secret = Lua.os.getenv("CPIM_COMPONENT_SECRET")
