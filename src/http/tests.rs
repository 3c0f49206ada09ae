use super::*;
use std::net::TcpListener;
use std::thread;

/// A server that reads the request, answers `answer` in pieces of `step` bytes and
/// closes; returns the request it read.
fn server(answer: Vec<u8>, step: usize) -> (SocketAddr, thread::JoinHandle<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            req.extend_from_slice(&buf[..n]);
        }
        for piece in answer.chunks(step) {
            if s.write_all(piece).is_err() {
                break;
            }
            s.flush().unwrap();
        }
        req
    });
    (addr, h)
}

/// Runs the exchange to its end, as the loop would; the body it gave.
fn run(peer: SocketAddr, body: &[u8], max_body: u64) -> (Step, Vec<u8>) {
    let req = Request {
        method: "POST",
        target: "/v1/x?y=1",
        headers: &[("X-Api-Key", "k")],
        body,
    };
    let mut ex = Exchange::start(peer, &req, max_body, Duration::from_secs(20)).unwrap();
    let mut got = Vec::new();
    loop {
        let mut fds = [ex.poll_fd()];
        sys::poll(&mut fds, 1000).unwrap();
        if Instant::now() > ex.deadline() {
            return (ex.timed_out(), got);
        }
        match ex.ready(&mut |status, b| {
            assert_eq!(status, 200);
            got.extend_from_slice(b);
            Ok(())
        }) {
            Step::Pending => {}
            s => return (s, got),
        }
    }
}

#[test]
fn an_answer_streams_in_and_ends_at_the_close() {
    let body = b"{\"new\":null}".repeat(3000);
    let mut answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n".to_vec();
    answer.extend_from_slice(&body);
    let (addr, h) = server(answer, 777);
    let (step, got) = run(addr, b"[1]", 1 << 20);
    assert_eq!(step, Step::Done(200));
    assert_eq!(got, body);
    let req = String::from_utf8(h.join().unwrap()).unwrap();
    assert!(req.starts_with("POST /v1/x?y=1 HTTP/1.0\r\n"), "{req}");
    assert!(req.contains("\r\nX-Api-Key: k\r\n"), "{req}");
    assert!(req.contains("\r\nUser-Agent: ampere/"), "{req}");
    assert!(req.contains("\r\nContent-Length: 3\r\n"), "{req}");
    assert!(!req.to_ascii_lowercase().contains("keep-alive"), "{req}");
}

#[test]
fn content_length_ends_the_body_without_a_close() {
    let (addr, _h) = server(
        b"HTTP/1.0 200 OK\nContent-Length: 4\n\nabcdEXTRA".to_vec(),
        3,
    );
    let (step, got) = run(addr, b"", 100);
    assert_eq!(step, Step::Done(200));
    assert_eq!(got, b"abcd");
}

#[test]
fn what_is_not_a_bounded_http_answer_fails() {
    let big = format!("HTTP/1.0 200 OK\r\n\r\n{}", "x".repeat(5000)).into_bytes();
    for (answer, max, why) in [
        (big, 4096, "longer than 4096"),
        (
            b"HTTP/1.0 200 OK\r\nContent-Length: 999999999\r\n\r\n".to_vec(),
            4096,
            "of 999999999 bytes",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
            4096,
            "chunked",
        ),
        (
            b"SSH-2.0-OpenSSH\r\n\r\n".to_vec(),
            4096,
            "not an HTTP answer",
        ),
        (
            b"HTTP/1.0 200 OK\r\nX: y".to_vec(),
            4096,
            "before a complete answer head",
        ),
        (vec![b'a'; 20000], 4096, "head longer than"),
        (
            b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nabc".to_vec(),
            4096,
            "7 bytes short",
        ),
    ] {
        let (addr, _h) = server(answer, 1000);
        match run(addr, b"", max) {
            (Step::Failed(e), _) => assert!(e.contains(why), "{e} (wanted {why})"),
            other => panic!("{other:?} (wanted {why})"),
        }
    }
}

#[test]
fn a_refused_connect_fails() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    match run(addr, b"", 100) {
        (Step::Failed(e), _) => assert!(e.contains("cannot connect"), "{e}"),
        other => panic!("{other:?}"),
    }
}
