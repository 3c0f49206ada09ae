//! Ampere: an active network filter for the Asterisk PBX. It reads AMI security events,
//! keeps a penalty per remote host and bans offenders in the kernel's firewall.
//!
//! The library exists for the binary, the tests, the benchmarks and the fuzz targets; its
//! modules are public for them, not as a stable API. DESIGN.md is the map.
// Only the modules that wrap C APIs (store::sqlite, sys) may use `unsafe`, and they say so.
#![deny(unsafe_code)]

pub mod log;

pub mod addr;
pub mod admin;
pub mod ami;
pub mod ban;
pub mod bans;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod event;
pub mod exec;
pub mod firewall;
pub mod hook;
pub mod judge;
pub mod replay;
pub mod score;
pub mod session;
pub mod stats;
pub mod store;
pub mod sys;
pub mod table;
pub mod trust;
