//! `trust = NAME`: names are taken with their lines, mistyped addresses are not names.

use ipnet::IpNet;

use super::{bad, ok};

#[test]
fn trust_takes_host_names_with_their_lines_and_refuses_mistyped_addresses() {
    let c =
        ok("trust = 10.0.0.0/8\n\ntrust = Office.Example.NET.\ntrust = vpn-2.example.org\n").config;
    assert_eq!(c.trust, ["10.0.0.0/8".parse::<IpNet>().unwrap()]);
    let names: Vec<(&str, usize)> = c
        .trust_names
        .iter()
        .map(|n| (n.name.as_str(), n.line))
        .collect();
    assert_eq!(names, [("office.example.net", 3), ("vpn-2.example.org", 4)]);
    assert_eq!(c.trust_refresh, 300);
    for typo in [
        "192.168.1.300",
        "10.0.0.0/33",
        "-bad.example",
        "a_b.example",
        "a..example",
        "2001:db8::g",
        "nonsense",
    ] {
        let e = bad(&format!("trust = {typo}\n"));
        assert!(
            e.to_string()
                .contains("is not an address, a network or a host name"),
            "{typo}: {e}"
        );
    }
}
