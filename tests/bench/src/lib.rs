//! Load generator that drives a running gateway (RFC 7501/7502 method).
