//! How Ampere starts other programs (firewall tools, hooks): execve with an argument vector,
//! a cleared environment and a fixed PATH, never a shell, so that nothing from the wire or
//! the admin's environment can change what runs.

use std::path::Path;
use std::process::Command;

pub const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// `prog` ready to be given arguments and spawned.
pub fn command(prog: &Path) -> Command {
    let mut c = Command::new(prog);
    c.env_clear().env("PATH", PATH);
    c
}

/// `prog args...` as a log line shows it, cut at 200 characters.
pub fn shown(prog: &Path, args: &[&str]) -> String {
    let mut s = format!("{} {}", prog.display(), args.join(" "));
    if s.len() > 200 {
        let mut cut = 200;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_is_cleared_and_path_fixed() {
        std::env::set_var("AMPERE_EXEC_TEST_LEAK", "x");
        let out = command(Path::new("/usr/bin/env")).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.trim(), format!("PATH={PATH}"));
    }

    #[test]
    fn long_command_lines_are_cut() {
        let long = "é".repeat(300);
        let s = shown(Path::new("/sbin/x"), &[&long]);
        assert!(s.len() <= 204 && s.ends_with('…'), "{s}");
    }
}
