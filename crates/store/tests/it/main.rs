//! Integration tests of highwater-store (one binary, one module per concern).

mod bad_input;
mod common;
mod conformance;
mod crash;
mod dataset;
mod race;
mod seed_compat;
mod upkeep;
mod writers;
