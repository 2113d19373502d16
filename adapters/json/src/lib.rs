//! JSON protocol adapter: newline-delimited JSON over TCP and WebSocket.
