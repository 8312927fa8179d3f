//! Integration tests of highwater-store (one binary, one module per concern).

mod bad_input;
mod common;
mod conformance;
mod crash;
mod race;
mod upkeep;
