//! A name server that never answers, and the AMI host given by name: the lookup runs in a
//! child, so the loop goes on answering `status` and banning while DNS hangs, and the log
//! says why Ampere is not connected.

use super::*;

pub fn dns_scenario() {
    setup_chain();
    // The namespace's resolv.conf names this socket: bound, so no ICMP error ends a
    // query early, and never read, so every query waits for the resolver's timeout.
    let _silent = UdpSocket::bind("127.0.0.1:53").unwrap();
    let setup = Setup::new(None, &format!("{REAL_TOOLS}host = ami.test\nport = 5038\n"));
    let d = setup.spawn();
    wait_for(10, "the control socket", || {
        setup.run(&["status"], "").0 == 0
    });
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut banned = false;
    // Two lookups' worth (each is killed after 10 s): a blocking lookup would hold the loop
    // for the resolver's whole timeout (5 s per try, two tries).
    while started.elapsed() < Duration::from_secs(24) {
        let t = Instant::now();
        let (code, out, err) = setup.run(&["status"], "");
        let took = t.elapsed();
        assert_eq!(code, 0, "status failed: {out}{err}\n{}", setup.log());
        slowest = slowest.max(took);
        if !banned && started.elapsed() > Duration::from_secs(3) {
            let (code, _, err) = setup.run(&["-a"], &format!("{ATK4}\n"));
            assert_eq!(code, 0, "{err}");
            banned = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        slowest < Duration::from_secs(1),
        "status took {slowest:?} while DNS hung:\n{}",
        setup.log()
    );
    assert!(
        in_kernel("iptables", ATK4),
        "the ban did not reach the kernel"
    );
    wait_for(15, "the failed lookup in the log", || {
        setup.log().contains("cannot resolve AMI host ami.test")
    });
    assert!(!setup.log().contains("logged in to AMI"));
    assert_eq!(d.stop(), 0);
}

#[test]
#[ignore = "helper: runs inside the pbx namespace (see a_name_server_that_never_answers_never_holds_the_loop)"]
fn inner_dns() {
    if inside().is_some() {
        dns_scenario();
    }
}
