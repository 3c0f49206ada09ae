//! The README's set-up steps for Debian, run as written, up to an attacker's ban in the
//! kernel: when a step in the README breaks, this test does. The steps are the code blocks
//! after `<!-- step: NAME -->` lines. They run in one shell, in a mount namespace of their
//! own with temporary directories bound over the paths they write (`SANDBOXED`), with the
//! test's binary as `ampere`; what is not Ampere's is a stand-in that does what the real one
//! would: `make deb` and `dpkg -i` put the package's config where the package puts it,
//! `systemctl enable --now ampere` starts the daemon as the unit does (`ampere -t`, then
//! `ampere`, then waits until it answers), `apt-get` and `asterisk -rx` do nothing (the
//! tools are installed; the test AMI server on 127.0.0.1:5038 stands in for Asterisk, and
//! the AMI user and secret the steps give it must be those the config logs in with).

use super::*;

struct Step {
    name: String,
    lang: String,
    body: String,
}

/// The README's steps, in order.
fn steps(readme: &str) -> Vec<Step> {
    let mut out = Vec::new();
    let mut lines = readme.lines();
    while let Some(l) = lines.next() {
        let Some(name) = l
            .strip_prefix("<!-- step: ")
            .and_then(|r| r.strip_suffix(" -->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or_default();
        let lang = fence
            .strip_prefix("```")
            .unwrap_or_else(|| panic!("step {name}: no code block right after its marker"));
        let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        out.push(Step {
            name: name.to_string(),
            lang: lang.to_string(),
            body: body.join("\n") + "\n",
        });
    }
    out
}

/// `key = value` in `section` of manager.conf (Asterisk's syntax, not Ampere's).
fn ini_value(body: &str, section: &str, key: &str) -> Option<String> {
    let mut current = "";
    for l in body.lines().map(str::trim) {
        if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            current = s;
            continue;
        }
        let Some((k, v)) = l.split_once('=').filter(|_| current == section) else {
            continue;
        };
        if k.trim() == key {
            return Some(v.split(';').next().unwrap_or("").trim().to_string());
        }
    }
    None
}

/// The directories the steps write to, inside their mount namespace.
const SANDBOXED: [&str; 4] = [
    "/etc/ampere",
    "/var/lib/ampere",
    "/run/ampere",
    "/etc/asterisk",
];

/// Mount points the test had to make on the host; removed again (empty) when dropped.
struct Made(Vec<&'static str>);

impl Drop for Made {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// The stand-ins, as shell scripts in `bin`.
fn stand_ins(bin: &Path, state: &Path) {
    let root = env!("CARGO_MANIFEST_DIR");
    let scripts = [
        ("ampere", format!("#!/bin/sh\nexec {} \"$@\"\n", common::bin())),
        ("make", "#!/bin/sh\necho \"(make $*: the test's binary stands in)\"\n".to_string()),
        (
            "dpkg",
            format!(
                "#!/bin/sh\n[ \"$1\" = -i ] || exit 1\ninstall -d /etc/ampere /var/lib/ampere\n\
                 [ -e /etc/ampere/ampere.cfg ] || install -m 0640 {root}/etc/ampere.cfg /etc/ampere/ampere.cfg\n"
            ),
        ),
        ("apt-get", "#!/bin/sh\nexit 0\n".to_string()),
        ("asterisk", "#!/bin/sh\nexit 0\n".to_string()),
        (
            "systemctl",
            format!(
                "#!/bin/sh\n\
                 case \"$*\" in *ampere*) ;; *) exit 1 ;; esac\n\
                 ampere -t >/dev/null || exit 1\n\
                 setsid ampere >>{s}/daemon.log 2>&1 </dev/null &\n\
                 pid=$!\n\
                 echo $pid >{s}/pid\n\
                 for i in $(seq 150); do\n\
                 \x20   ampere status keys 2>/dev/null | grep -qx \"pid $pid\" && exit 0\n\
                 \x20   kill -0 $pid 2>/dev/null || {{ cat {s}/daemon.log; exit 1; }}\n\
                 \x20   sleep 0.2\n\
                 done\n\
                 exit 1\n",
                s = state.display()
            ),
        ),
    ];
    for (name, text) in scripts {
        let p = bin.join(name);
        std::fs::write(&p, text).unwrap();
        must(&["chmod", "755", p.to_str().unwrap()]);
    }
}

pub fn readme_scenario() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let steps = steps(&readme);
    let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["build", "asterisk", "firewall", "config", "start"]);
    let find = |n: &str| steps.iter().find(|s| s.name == n).unwrap();
    // The AMI user the steps give Asterisk is the one the config logs in as.
    let asterisk = find("asterisk");
    let config = find("config");
    assert!(asterisk.body.starts_with("; /etc/asterisk/manager.conf\n"));
    assert!(config.body.starts_with("; /etc/ampere/ampere.cfg\n"));
    // The config step read by Ampere's own parser (what it does not set keeps its default).
    let cfg = ampere::config::parse(config.body.as_bytes(), "the README's config step")
        .unwrap_or_else(|e| panic!("{e}"))
        .config;
    let user = cfg.user.clone();
    let secret = ini_value(&asterisk.body, &user, "secret");
    assert!(
        secret.is_some(),
        "manager.conf has no [{user}] with a secret"
    );
    assert_eq!(secret.as_deref(), Some(cfg.pass.as_str()), "secret != pass");
    let read = ini_value(&asterisk.body, &user, "read").unwrap_or_default();
    assert!(
        read.contains("security"),
        "[{user}] cannot read security events"
    );
    let backend = cfg.backend.as_str();

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    stand_ins(&bin, &state);
    let mut made = Made(Vec::new());
    let mut script = String::from("set -e\n");
    for (i, d) in SANDBOXED.iter().enumerate() {
        if !Path::new(d).exists() {
            std::fs::create_dir_all(d).unwrap();
            made.0.push(d);
        }
        let over = dir.path().join(format!("fs{i}"));
        std::fs::create_dir_all(&over).unwrap();
        script.push_str(&format!("mount --bind {} {d}\n", over.display()));
    }
    for s in &steps {
        script.push_str(&format!("echo '== step {}'\n", s.name));
        match s.lang.as_str() {
            "sh" => script.push_str(&s.body),
            "ini" => {
                let target = s.body.lines().next().unwrap().trim_start_matches("; ");
                script.push_str(&format!(
                    "cat >> {target} <<'STEP_EOF'\n{}STEP_EOF\n",
                    s.body
                ));
            }
            other => panic!("step {}: a ```{other} block: neither sh nor ini", s.name),
        }
    }
    let st = state.display();
    script.push_str(&format!(
        "touch {st}/started\n\
         while [ ! -e {st}/attacked ]; do sleep 0.1; done\n\
         for i in $(seq 100); do ampere why {ATK4} | grep -q 'kernel: drops it' && break; sleep 0.1; done\n\
         ampere why {ATK4}\n\
         ampere why {ATK4} | grep -q 'kernel: drops it'\n"
    ));
    let script_path = dir.path().join("steps.sh");
    std::fs::write(&script_path, &script).unwrap();

    let (tx, rx) = mpsc::channel();
    let server = AmiServer::start_on(
        "127.0.0.1:5038",
        vec![Plan::Feed(Arc::new(Mutex::new(rx)))],
        Duration::ZERO,
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let child = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh"])
        .arg(&script_path)
        .env("PATH", path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let kill_daemon = || {
        if let Ok(pid) = std::fs::read_to_string(state.join("pid")) {
            sh(&["kill", pid.trim()]);
        }
    };
    let started = Instant::now();
    while !state.join("started").exists() {
        if started.elapsed() > Duration::from_secs(60)
            || !Path::new(&format!("/proc/{}", child.id())).exists()
        {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    if state.join("started").exists() {
        for e in fixture_events("pjsip-svmap.ami", &[("203.0.113.2", ATK4)]) {
            tx.send(e).unwrap();
        }
        std::fs::write(state.join("attacked"), "").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    kill_daemon();
    drop(server);
    let log = std::fs::read_to_string(state.join("daemon.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "the README's steps failed:\n{}{}\ndaemon's log:\n{log}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(in_kernel(backend, ATK4), "no ban in the kernel:\n{log}");
    drop(made);
}

#[test]
#[ignore = "helper: runs inside the pbx namespace (see the_readme_s_set_up_steps_ban_an_attacker)"]
fn inner_readme() {
    if inside().is_some() {
        readme_scenario();
    }
}
