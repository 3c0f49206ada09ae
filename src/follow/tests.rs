use std::io::Write;

use super::*;

fn append(path: &Path, text: &[u8]) {
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap()
        .write_all(text)
        .unwrap();
}

fn read_all(f: &mut Follower) -> Vec<String> {
    let mut got = Vec::new();
    // Several turns: each reads at most PER_TURN.
    for _ in 0..200 {
        f.read(Instant::now(), &mut |l| {
            got.push(String::from_utf8_lossy(l).into_owned())
        });
        if !f.more {
            break;
        }
    }
    got
}

#[test]
fn follows_from_the_end_through_rotation_and_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("messages");
    append(&path, b"before 1\nbefore 2\n");
    let mut f = Follower::new(&path, Instant::now());
    assert!(f.poll_fd().is_some(), "inotify on the directory");
    assert!(
        read_all(&mut f).is_empty(),
        "what was there before is not read"
    );
    // A line written in two pieces.
    append(&path, b"one\ntw");
    assert_eq!(read_all(&mut f), ["one"]);
    append(&path, b"o\n");
    assert_eq!(read_all(&mut f), ["two"]);
    // logrotate: rename, then more lines to the old file (Asterisk still has it open), and
    // a new file: the old one's rest first, then the new one from its start.
    std::fs::rename(&path, dir.path().join("messages.1")).unwrap();
    append(&dir.path().join("messages.1"), b"three\n");
    append(&path, b"four\n");
    assert_eq!(read_all(&mut f), ["three", "four"]);
    assert_eq!(f.counters.rotations, 1);
    // Truncated in place (copytruncate), seen, then written again. (Truncated and written
    // past the old length before the follower looks, the new start is lost: tail -F's
    // race too.)
    std::fs::write(&path, b"").unwrap();
    assert!(read_all(&mut f).is_empty());
    append(&path, b"five\n");
    assert_eq!(read_all(&mut f), ["five"]);
    assert_eq!(f.counters.truncations, 1);
    // Deleted, and made again later.
    std::fs::remove_file(&path).unwrap();
    assert!(read_all(&mut f).is_empty());
    append(&path, b"six\n");
    assert_eq!(read_all(&mut f), ["six"]);
}

#[test]
fn hostile_content_is_bounded_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("messages");
    std::fs::write(&path, b"").unwrap();
    let mut f = Follower::new(&path, Instant::now());
    // 16 MiB without a line break, then a line: the big one dropped, memory flat.
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..16 {
        append(&path, &chunk);
    }
    append(&path, b"\nafter\n");
    let mut turns = 0;
    let mut got = Vec::new();
    loop {
        turns += 1;
        f.read(Instant::now(), &mut |l| got.push(l.to_vec()));
        assert!(f.lines.pending() as usize * crate::logdoor::MAX_LINE <= crate::logdoor::MAX_LINE);
        if !f.more {
            break;
        }
    }
    assert_eq!(got, [b"after".to_vec()]);
    assert_eq!(f.counters.too_long, 1);
    assert!(turns >= 64, "at most PER_TURN per turn: {turns} turns");
    // Binary and non-UTF-8 lines: dropped, counted.
    append(&path, b"a\0b\n\xff\xfe\nok\n");
    let got = read_all(&mut f);
    assert_eq!(got, ["ok"]);
    assert_eq!(f.counters.binary, 2);
}

#[test]
fn a_file_missing_at_start_is_read_from_its_start_once_made() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("messages");
    let mut f = Follower::new(&path, Instant::now());
    assert!(read_all(&mut f).is_empty());
    append(&path, b"first\n");
    assert!(f.due(true, Instant::now()));
    assert_eq!(read_all(&mut f), ["first"]);
}
