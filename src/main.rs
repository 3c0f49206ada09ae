use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use ampere::cli::{self, Mode};
use ampere::config;
use ampere::control::client::{self, Asked};
use ampere::control::proto::{Answer, Request};
use ampere::error::Error;
use ampere::log;

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ampere: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    match &args.mode {
        Mode::Help => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Mode::Version => {
            println!("{}", ampere::version());
            return ExitCode::SUCCESS;
        }
        Mode::Resolve(names) => {
            return match ampere::resolver::child(names) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            };
        }
        Mode::RunHook(secs, argv) => return ampere::hook::runner::run(*secs, &argv[0], &argv[1..]),
        Mode::ListActive(db) => return ampere::list_active(db),
        _ => {}
    }
    let path = args
        .config
        .as_deref()
        .unwrap_or(Path::new(config::DEFAULT_PATH));
    let loaded = match config::load(path, args.config.is_some()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ampere: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = loaded.config;
    let target = match &args.logfile {
        Some(f) => log::Target::File(f.clone()),
        None => cfg.log.clone().unwrap_or(log::Target::Stderr),
    };
    if let Err(e) = log::init(&target) {
        eprintln!("ampere: {e}");
        return ExitCode::from(2);
    }
    for w in &loaded.warnings {
        ampere::warn!("{w}");
    }
    let result = match &args.mode {
        Mode::Test => {
            // Warnings first, then the config; the names are looked up before either.
            let named = ampere::resolver::lookup_all(&cfg.trust_names);
            for (n, err) in &named {
                if let Some(e) = err {
                    ampere::warn!("trust {} does not resolve: {e}", n.name);
                }
            }
            print!("{}", cfg.describe());
            for (n, _) in named.iter().filter(|(n, _)| !n.addrs.is_empty()) {
                let addrs = ampere::resolver::joined(&n.addrs);
                println!("# trust {} resolves to {addrs}", n.name);
            }
            Ok(true)
        }
        Mode::List => ampere::admin::list(&cfg, &mut std::io::stdout().lock()).map(|()| true),
        Mode::Add | Mode::Del => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprintln!("ampere: -a/-d read addresses from standard input, not from a terminal; pipe them in (e.g. ampere -a < list.txt)");
                return ExitCode::from(2);
            }
            let fw = ampere::firewall::backend(&cfg);
            if args.mode == Mode::Add {
                ampere::admin::add(&cfg, fw, stdin.lock(), args.force)
            } else {
                ampere::admin::del(&cfg, fw, stdin.lock())
            }
        }
        Mode::Replay(file) => ampere::replay::run(&cfg, file).map(|()| true),
        Mode::Status { keys } => match client::ask(&cfg.socket, &Request::Status { keys: *keys }) {
            Ok(Asked::Answer(a)) => Ok(shown(a)),
            Ok(Asked::NotRunning) => {
                print!("{}", ampere::report::status_offline(&cfg, *keys));
                return ExitCode::from(3);
            }
            Err(e) => Err(e),
        },
        Mode::Why(addr) => match client::ask(&cfg.socket, &Request::Why(addr.clone())) {
            Ok(Asked::Answer(a)) => Ok(shown(a)),
            Ok(Asked::NotRunning) => ampere::store::Store::open(&cfg.db)
                .map_err(Error::from)
                .map(|store| {
                    let fw = ampere::firewall::backend(&cfg);
                    let names = ampere::resolver::lookup_all(&cfg.trust_names);
                    let names: Vec<_> = names.into_iter().map(|(n, _)| n).collect();
                    let mut own = ampere::own::OwnNets::default();
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs() as i64);
                    let _ = own.read(now);
                    shown(ampere::report::why(
                        &cfg,
                        &store,
                        fw.as_ref(),
                        None,
                        &names,
                        &own,
                        addr,
                    ))
                }),
            Err(e) => Err(e),
        },
        Mode::Daemon => ampere::daemon::run(cfg, args.config, args.logfile).map(|()| true),
        Mode::Help | Mode::Version | Mode::Resolve(_) | Mode::RunHook(..) | Mode::ListActive(_) => {
            unreachable!("handled above")
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            ampere::error!("{e}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// A report on standard output, an error too (as the daemon gave it); true when it is no
/// error.
fn shown(a: Answer) -> bool {
    match a {
        Answer::Text(t) => {
            print!("{t}");
            true
        }
        Answer::Error(e) => {
            println!("error: {e}");
            false
        }
        Answer::Items { .. } => {
            println!("error: the daemon answered a report request with a list");
            false
        }
    }
}

/// The exit status of a command that failed: 1, as init scripts and the tests expect of
/// every failure after the config was read (a usage or config error is 2, a `status` with
/// no daemon 3, both decided above). One place, so that a kind of its own can have its own.
fn exit_code(e: &Error) -> u8 {
    match e {
        Error::Config(_)
        | Error::Store(_)
        | Error::Firewall(_)
        | Error::Io { .. }
        | Error::Invalid(_)
        | Error::Daemon(_)
        | Error::Running(_)
        | Error::Protocol(_) => 1,
    }
}
