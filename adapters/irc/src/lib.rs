//! IRC adapter (RFC 1459/2812).
