//! Ampere: an active network filter for the Asterisk PBX. It reads AMI security events,
//! keeps a penalty per remote host and bans offenders in the kernel's firewall.

pub mod log;

pub mod admin;
pub mod ami;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod event;
pub mod firewall;
pub mod hook;
pub mod replay;
pub mod score;
pub mod stats;
pub mod store;
pub mod sys;
pub mod table;
pub mod trust;
