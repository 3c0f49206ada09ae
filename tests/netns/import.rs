//! An admin's `-a` of a long list, in parts of 50,000: each part's tool (`ipset restore`,
//! `nft -f`) runs while the next part is stored, reading its part from an unnamed file.
//! The kernel must end up holding exactly what the database holds, every part whole.

use super::*;

/// More than two parts: two are started beside the next one's storing, the last is not.
const LIST: usize = 120_010;

pub fn import_scenario(backend: &str) {
    let pbx = Pbx::new(&format!("backend = {backend}\nmaxelem = 200000\n"));
    let mut list = String::new();
    for i in 0..LIST {
        let a = if i % 10 == 0 {
            format!("2001:db8:{:x}:{:x}::", i >> 16, i & 0xffff)
        } else {
            format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255)
        };
        list.push_str(&a);
        list.push('\n');
    }
    let started = Instant::now();
    let (code, _, err) = pbx.setup.run(&["-a"], &list);
    let took = started.elapsed();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("{LIST} banned")), "{err}");
    assert_eq!(kernel_ban_count(backend), LIST);
    let held = kernel_bans(backend);
    let stored: BTreeSet<String> = pbx.setup.stored().into_iter().collect();
    assert_eq!(stored.len(), LIST);
    let only = |a: &BTreeSet<String>, b: &BTreeSet<String>| -> Vec<String> {
        a.difference(b).take(5).cloned().collect()
    };
    assert!(
        held == stored,
        "the kernel and the database differ: only in the kernel {:?}, only stored {:?}",
        only(&held, &stored),
        only(&stored, &held)
    );
    // Again: all of it known, nothing added twice.
    let (code, _, err) = pbx.setup.run(&["-a"], &list);
    assert_eq!(code, 0, "{err}");
    assert_eq!(kernel_ban_count(backend), LIST);
    println!(
        "measured: {backend}: ampere -a of {LIST} addresses in {:.1} s (debug build), the kernel equal to the database",
        took.as_secs_f64()
    );
}

#[test]
#[ignore = "helper: runs inside the pbx namespace, once per backend (AMPERE_NETNS_BACKEND)"]
fn inner_import() {
    if inside().is_some() {
        import_scenario(&backend());
    }
}
