//! Command-line options (lexopt). Only parsing lives here; `main` dispatches.

use crate::error::Invalid;
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Daemon,
    Add,
    Del,
    List,
    Test,
    Replay(PathBuf),
    /// `status` / `-s`; with `keys`, as `key value` lines.
    Status {
        keys: bool,
    },
    /// `why ADDR` / `-q ADDR`.
    Why(String),
    /// `--resolve NAME...` (not in the usage: the daemon's own name lookup, `resolver`).
    Resolve(Vec<String>),
    /// `--run-hook SECONDS PROG ARGS...` (not in the usage: the runner of each hook,
    /// `hook::runner`).
    RunHook(u64, Vec<std::ffi::OsString>),
    /// `--list-active DB` (not in the usage: the audit's survey reads the active bans in a
    /// process of its own, `bans::survey`).
    ListActive(PathBuf),
    Help,
    Version,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args {
    pub mode: Mode,
    /// `-c FILE`; None = the default path, which may be missing.
    pub config: Option<PathBuf>,
    /// `-o FILE`: append log lines to FILE (overrides `log =`).
    pub logfile: Option<PathBuf>,
    pub force: bool,
}

pub const USAGE: &str = "\
Usage: ampere [-c CONFIG] [-o LOGFILE]          run the filter (in the foreground)
       ampere [-c CONFIG] -a|--add  < ADDRESSES  ban addresses now, one per line
       ampere [-c CONFIG] -d|--del  < ADDRESSES  lift bans now, one per line
       ampere [-c CONFIG] -l|--list              list the bans
       ampere [-c CONFIG] -t|--test              check the config and print it
       ampere [-c CONFIG] --replay FILE          score a captured AMI stream, print bans
       ampere [-c CONFIG] status [keys]          ask the running daemon how it is (-s)
       ampere [-c CONFIG] why ADDR               why ADDR is banned or not (-q ADDR)

Options:
  -c, --config FILE   config file (default /etc/ampere/ampere.cfg)
  -o, --output FILE   append log lines to FILE instead of stderr
      --force         with -a: also ban the address you are connected from (SSH_CLIENT)
  -h, --help          this help
  -V, --version       version and build target

Addresses for -a/-d: `addr` or `addr/len`, IPv4 or IPv6; blank lines and # or ; comments
are skipped. Exit status: 0 ok, 1 a line or an action failed, 2 bad usage or config,
3 (status) the daemon is not running.
";

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Args, Invalid> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut mode = None;
    let mut config = None;
    let mut logfile = None;
    let mut force = false;
    let set = |m: Mode, mode: &mut Option<Mode>| -> Result<(), Invalid> {
        match mode {
            Some(prev) if *prev != m => {
                Err(format!("{} and {} cannot be combined", name(prev), name(&m)).into())
            }
            _ => {
                *mode = Some(m);
                Ok(())
            }
        }
    };
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => set(Mode::Help, &mut mode)?,
            Short('V') | Long("version") => set(Mode::Version, &mut mode)?,
            Short('a') | Long("add") => set(Mode::Add, &mut mode)?,
            Short('d') | Long("del") => set(Mode::Del, &mut mode)?,
            Short('l') | Long("list") => set(Mode::List, &mut mode)?,
            Short('t') | Long("test") => set(Mode::Test, &mut mode)?,
            Short('s') | Long("status") => set(Mode::Status { keys: false }, &mut mode)?,
            Short('q') | Long("why") => {
                let a = p.value().map_err(|e| e.to_string())?;
                set(Mode::Why(a.to_string_lossy().into_owned()), &mut mode)?
            }
            Value(v) if mode.is_none() && v == "status" => {
                let keys = matches!(
                    p.try_raw_args().and_then(|r| r.peek().map(|a| a == "keys")),
                    Some(true)
                );
                if keys {
                    let _ = p.value();
                }
                set(Mode::Status { keys }, &mut mode)?
            }
            Value(v) if mode.is_none() && v == "why" => {
                let a = p.value().map_err(|_| "why needs an address".to_string())?;
                set(Mode::Why(a.to_string_lossy().into_owned()), &mut mode)?
            }
            Long("resolve") => {
                let names = p.raw_args().map_err(|e| e.to_string())?;
                let names = names.map(|n| n.to_string_lossy().into_owned()).collect();
                set(Mode::Resolve(names), &mut mode)?
            }
            Long("run-hook") => {
                let mut rest = p.raw_args().map_err(|e| e.to_string())?;
                let secs = rest
                    .next()
                    .and_then(|s| s.to_str()?.parse().ok())
                    .ok_or("--run-hook needs SECONDS PROG")?;
                let argv: Vec<_> = rest.collect();
                if argv.is_empty() {
                    return Err("--run-hook needs SECONDS PROG".into());
                }
                set(Mode::RunHook(secs, argv), &mut mode)?
            }
            Long("list-active") => {
                let db = PathBuf::from(p.value().map_err(|e| e.to_string())?);
                set(Mode::ListActive(db), &mut mode)?
            }
            Long("replay") => {
                let file = PathBuf::from(p.value().map_err(|e| e.to_string())?);
                set(Mode::Replay(file), &mut mode)?
            }
            Short('c') | Long("config") => {
                config = Some(PathBuf::from(p.value().map_err(|e| e.to_string())?))
            }
            Short('o') | Long("output") => {
                logfile = Some(PathBuf::from(p.value().map_err(|e| e.to_string())?))
            }
            Long("force") => force = true,
            _ => return Err(arg.unexpected().to_string().into()),
        }
    }
    Ok(Args {
        mode: mode.unwrap_or(Mode::Daemon),
        config,
        logfile,
        force,
    })
}

fn name(m: &Mode) -> &'static str {
    match m {
        Mode::Daemon => "daemon",
        Mode::Add => "--add",
        Mode::Del => "--del",
        Mode::List => "--list",
        Mode::Test => "--test",
        Mode::Replay(_) => "--replay",
        Mode::Status { .. } => "status",
        Mode::Why(_) => "why",
        Mode::Resolve(_) => "--resolve",
        Mode::RunHook(..) => "--run-hook",
        Mode::ListActive(_) => "--list-active",
        Mode::Help => "--help",
        Mode::Version => "--version",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Args, Invalid> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn modes_and_options() {
        assert_eq!(p(&[]).unwrap().mode, Mode::Daemon);
        let a = p(&["-c", "/x.cfg", "-o", "/l.log", "-a"]).unwrap();
        assert_eq!(a.mode, Mode::Add);
        assert_eq!(a.config, Some(PathBuf::from("/x.cfg")));
        assert_eq!(a.logfile, Some(PathBuf::from("/l.log")));
        assert_eq!(p(&["--del"]).unwrap().mode, Mode::Del);
        assert_eq!(p(&["-l"]).unwrap().mode, Mode::List);
        assert_eq!(p(&["--test"]).unwrap().mode, Mode::Test);
        assert_eq!(p(&["-V"]).unwrap().mode, Mode::Version);
        assert_eq!(p(&["--help"]).unwrap().mode, Mode::Help);
        assert_eq!(
            p(&["--replay", "f.ami"]).unwrap().mode,
            Mode::Replay("f.ami".into())
        );
        assert!(p(&["-a", "--force"]).unwrap().force);
        assert_eq!(p(&["--config=/y"]).unwrap().config, Some("/y".into()));
        assert_eq!(p(&["status"]).unwrap().mode, Mode::Status { keys: false });
        assert_eq!(p(&["-s"]).unwrap().mode, Mode::Status { keys: false });
        assert_eq!(
            p(&["status", "keys"]).unwrap().mode,
            Mode::Status { keys: true }
        );
        assert_eq!(
            p(&["-c", "/x", "why", "192.0.2.1"]).unwrap().mode,
            Mode::Why("192.0.2.1".into())
        );
        assert_eq!(
            p(&["-q", "2001:db8::1"]).unwrap().mode,
            Mode::Why("2001:db8::1".into())
        );
        assert!(p(&["why"]).is_err());
        assert_eq!(
            p(&["--resolve", "a.example", "b.example"]).unwrap().mode,
            Mode::Resolve(vec!["a.example".into(), "b.example".into()])
        );
        assert!(p(&["bogus"]).is_err());
    }

    #[test]
    fn bad_usage() {
        assert!(p(&["-a", "-d"])
            .unwrap_err()
            .0
            .contains("cannot be combined"));
        assert!(p(&["-x"]).is_err());
        assert!(p(&["-c"]).is_err());
        assert!(p(&["stray"]).is_err());
    }
}
