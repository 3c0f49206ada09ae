//! `max_bans` with the real kernel: a flood of 200,000 distinct attackers never puts more
//! than the ceiling in the chain or set, and what stays is what the database says.

use super::*;

const FLOOD: u32 = 200_000;
const CEILING: usize = 1_000;

fn flood_addr(n: u32) -> String {
    format!("10.{}.{}.{}", n >> 16, (n >> 8) & 255, n & 255)
}

/// One unknown-account probe: a ban at once (`ban_unknown_account`).
fn probe(n: u32) -> String {
    format!(
        "Event: InvalidAccountID\r\nService: PJSIP\r\nAccountID: {n}\r\nRemoteAddress: IPV4/TCP/{}/5060\r\n\r\n",
        flood_addr(n)
    )
}

pub fn ceiling_scenario(backend: &str) {
    let pbx = Pbx::new(&format!(
        "backend = {backend}\nmax_bans = {CEILING}\nbantime = 1h\n"
    ));
    let mut d = pbx.setup.spawn();
    pbx.logged_in(1);
    // The kernel is sampled while the flood goes on: it never holds more than the ceiling.
    let stop = Arc::new(Mutex::new(false));
    let sampler = {
        let (stop, backend) = (stop.clone(), backend.to_string());
        thread::spawn(move || {
            let mut most = 0;
            while !*stop.lock().unwrap() {
                most = most.max(kernel_ban_count(&backend));
                thread::sleep(Duration::from_millis(50));
            }
            most
        })
    };
    let started = Instant::now();
    for chunk in (0..FLOOD).collect::<Vec<_>>().chunks(500) {
        let text: String = chunk.iter().map(|&n| probe(n)).collect();
        pbx.send(text.as_bytes());
    }
    let last = flood_addr(FLOOD - 1);
    wait_for(600, "the last attacker's ban", || in_kernel(backend, &last));
    let took = started.elapsed();
    *stop.lock().unwrap() = true;
    let most = sampler.join().unwrap();
    assert!(d.is_running());
    assert_eq!(d.stop(), 0);
    let held = kernel_bans(backend);
    assert_eq!(held.len(), CEILING);
    assert!(most <= CEILING, "the kernel held {most} bans at once");
    // All equally long: the newest stay.
    let newest: BTreeSet<String> = (FLOOD - CEILING as u32..FLOOD).map(flood_addr).collect();
    assert_eq!(held, newest);
    let stored: BTreeSet<String> = pbx.setup.stored().into_iter().collect();
    assert_eq!(stored, held);
    let log = pbx.setup.log();
    let made_room = log.matches("made room for a newer ban").count();
    assert_eq!(made_room, FLOOD as usize - CEILING, "made-room lines");
    println!(
        "measured: {backend}: {FLOOD} distinct bans at max_bans = {CEILING} in {took:.1?}, at most {most} in the kernel"
    );
}

#[test]
#[ignore = "helper: runs inside the pbx namespace, once per backend (AMPERE_NETNS_BACKEND)"]
fn inner_ceiling() {
    if inside().is_some() {
        ceiling_scenario(&backend());
    }
}
