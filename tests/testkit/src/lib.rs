//! Testkit: start a gateway in-process and drive it from tests and harnesses.
