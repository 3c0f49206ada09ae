//! House rules a reader cannot check by eye across 150 files.

use std::path::Path;

/// Each `Result` whose error is a bare `String`, as (file, line text). Errors travel typed
/// (`error::Error`, `error::Invalid`, the store's and the firewall's); a `String` error
/// loses what a caller may decide on.
fn string_errors(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            string_errors(&path, out);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Tests may use what they like.
        let text = text.split("#[cfg(test)]").next().unwrap();
        for line in text.lines() {
            let mut rest = line;
            while let Some(at) = rest.find("Result<") {
                rest = &rest[at + "Result<".len()..];
                if error_type(rest).is_some_and(|e| e == "String") {
                    let file = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap();
                    out.push((file.display().to_string(), line.trim().to_string()));
                }
            }
        }
    }
}

/// The last top-level argument of the generic list that `args` begins (after `Result<`).
fn error_type(args: &str) -> Option<&str> {
    let (mut depth, mut last) = (0usize, 0);
    for (i, c) in args.char_indices() {
        match c {
            '<' | '(' | '[' => depth += 1,
            ')' | ']' => depth = depth.checked_sub(1)?,
            ',' if depth == 0 => last = i + 1,
            '>' if depth == 0 => return (last > 0).then(|| args[last..i].trim()),
            '>' => depth -= 1,
            _ => {}
        }
    }
    None
}

#[test]
fn errors_are_typed_but_for_the_words_of_another_process() {
    let mut found = Vec::new();
    string_errors(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    found.sort();
    let files: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
    // The two left, each with its reason beside it: a list item's reason as the daemon
    // wrote it on the socket, and a lookup child's error as it wrote it on its pipe.
    assert_eq!(
        files,
        ["src/control/proto.rs", "src/resolver/child.rs"],
        "a new `Result<_, String>`: give it a type (src/error.rs), or its reason here: {found:#?}"
    );
    assert_eq!(error_type("(Vec<u8>, bool), String>"), Some("String"));
    assert_eq!(error_type("Vec<Result<u8, String>>, Error>"), Some("Error"));
    assert_eq!(error_type("u8>"), None);
}
