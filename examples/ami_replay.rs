//! Test tool (not shipped): a test AMI server on 127.0.0.1 that replays one capture, then
//! keeps the connection open answering Pings; prints `port N` and runs until killed. Used by
//! pkg/test-deb.sh to give the installed package something real to ban.
//!
//!   cargo run --example ami_replay -- tests/fixtures/ami/pjsip-svmap.ami

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: ami_replay CAPTURE.ami");
    let file = std::path::Path::new(&path)
        .file_name()
        .and_then(|f| f.to_str())
        .expect("a capture file name")
        .to_string();
    let server = common::AmiServer::start(vec![common::Plan::ReplayThenSilent { file }]);
    println!("port {}", server.addr.port());
    std::io::stdout().flush().unwrap();
    loop {
        std::thread::park();
    }
}
