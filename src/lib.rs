//! Ampere: an active network filter for the Asterisk PBX. It reads AMI security events,
//! keeps a penalty per remote host and bans offenders in the kernel's firewall.
//!
//! The library exists for the binary, the tests, the benchmarks and the fuzz targets: the
//! modules they use are public, for them and not as a stable API; the rest is private.
//! DESIGN.md is the map.
// Only the modules that wrap C APIs (store::sqlite, sys) may use `unsafe`, and they say so.
#![deny(unsafe_code)]

pub mod log;
pub mod logdoor;

pub mod account;
pub mod addr;
pub mod admin;
pub mod admission;
pub mod ami;
pub mod ban;
mod bans;
/// `ampere --list-active DB` (the audit's survey reads the database through it).
pub use bans::survey::list_active;
pub mod cli;
mod clock;
pub mod config;
pub mod control;
pub mod crowdsec;
pub mod daemon;
/// Without its documentation text (`--cfg ampere_lean`, the size builds for routers): the
/// documents are written from a normal build (`make docs`), the router never prints them.
#[cfg(not(ampere_lean))]
pub mod docs;
pub mod engine;
pub mod error;
pub mod event;
mod exec;
pub mod facts;
pub mod firewall;
mod follow;
pub mod hook;
mod http;
pub mod ip_text;
pub mod json;
pub mod judge;
pub mod kinds;
pub mod known;
mod live_admin;
pub mod own;
pub mod replay;
pub mod report;
pub mod resolver;
pub mod score;
mod session;
mod sip_guard;
mod stats;
pub mod store;
mod sys;
pub mod table;
mod trust;

/// `ampere X.Y.Z (arch-os-libc)`, for `-V` and the daemon's first log line.
pub fn version() -> String {
    format!(
        "ampere {} ({}-{}-{})",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS,
        if cfg!(target_env = "musl") {
            "musl"
        } else {
            "gnu"
        }
    )
}
