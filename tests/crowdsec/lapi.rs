//! A real CrowdSec Local API (Debian's `crowdsec`, API only: `-no-cs`) in a namespace of
//! the test's, with its own config, database and log in a temp dir; and the namespaces it
//! shares with two PBXes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::common::*;

pub const PORT: u16 = 8080;

/// Fails loudly when something the tests need is missing.
pub fn require() {
    let missing = lacking(&["crowdsec", "cscli", "nft", "ip"]);
    assert!(
        missing.is_empty(),
        "the CrowdSec tests need {}: as root, `tests/install-deps.sh` (Debian's crowdsec installed offline, nftables, iproute2)",
        missing.join(", ")
    );
}

/// Namespace `lapi`, joined by a veth pair to each PBX namespace: LAPI at 10.213.N.1 as
/// seen from PBX N (N = 1, 2, ...), the PBX at 10.213.N.2. Deleted on drop.
pub struct Net {
    pub lapi: String,
    pub pbx: Vec<String>,
}

impl Net {
    pub fn create(pbxes: usize) -> Net {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = std::process::id();
        for line in sh(&["ip", "netns", "list"]).1.lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if let Some(rest) = name.strip_prefix("acs") {
                let pid = rest.split('-').next().unwrap_or("");
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = sh(&["ip", "netns", "del", name]);
                }
            }
        }
        let net = Net {
            lapi: format!("acs{id}-{seq}-lapi"),
            pbx: (1..=pbxes)
                .map(|n| format!("acs{id}-{seq}-pbx{n}"))
                .collect(),
        };
        must(&["ip", "netns", "add", &net.lapi]);
        must(&["ip", "-n", &net.lapi, "link", "set", "lo", "up"]);
        for (i, pbx) in net.pbx.iter().enumerate() {
            let n = i + 1;
            must(&["ip", "netns", "add", pbx]);
            let (dl, dp) = (
                format!("acl{}x{n}", id % 100_000),
                format!("acp{}x{n}", id % 100_000),
            );
            must(&[
                "ip", "link", "add", &dl, "netns", &net.lapi, "type", "veth", "peer", "name", &dp,
                "netns", pbx,
            ]);
            must(&[
                "ip",
                "-n",
                &net.lapi,
                "addr",
                "add",
                &format!("10.213.{n}.1/24"),
                "dev",
                &dl,
            ]);
            must(&[
                "ip",
                "-n",
                pbx,
                "addr",
                "add",
                &format!("10.213.{n}.2/24"),
                "dev",
                &dp,
            ]);
            must(&["ip", "-n", &net.lapi, "link", "set", &dl, "up"]);
            must(&["ip", "-n", pbx, "link", "set", &dp, "up"]);
            must(&["ip", "-n", pbx, "link", "set", "lo", "up"]);
        }
        net
    }

    /// LAPI's URL as PBX `n` (1-based) reaches it.
    pub fn url(&self, n: usize) -> String {
        format!("http://10.213.{n}.1:{PORT}")
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.pbx.iter().chain([&self.lapi]) {
            let _ = sh(&["ip", "netns", "del", ns]);
        }
    }
}

/// `crowdsec -no-cs` in the `lapi` namespace; killed on drop.
pub struct Lapi {
    pub dir: tempfile::TempDir,
    ns: String,
    child: Option<Child>,
}

impl Lapi {
    pub fn start(ns: &str) -> Lapi {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        fs::create_dir_all(dir.path().join("data")).unwrap();
        fs::write(dir.path().join("acquis.yaml"), "").unwrap();
        fs::write(dir.path().join("console.yaml"), "").unwrap();
        // No `online_client` (offline), no `db_config.flush` (it hard-deletes decisions
        // without telling bouncers), the API only.
        let cfg = format!(
            "common:\n  daemonize: false\n  log_media: file\n  log_level: info\n  log_dir: {d}/\n  working_dir: .\n\
config_paths:\n  config_dir: {d}/\n  data_dir: {d}/data/\n  simulation_path: /etc/crowdsec/simulation.yaml\n  hub_dir: /var/lib/crowdsec/hub/\n  index_path: /var/lib/crowdsec/hub/.index.json\n  notification_dir: {d}/\n  plugin_dir: /usr/lib/crowdsec/plugins/\n\
crowdsec_service:\n  acquisition_path: {d}/acquis.yaml\n\
cscli:\n  output: human\n\
db_config:\n  log_level: info\n  type: sqlite\n  db_path: {d}/data/crowdsec.db\n  use_wal: true\n\
plugin_config:\n  user: nobody\n  group: nogroup\n\
api:\n  client:\n    credentials_path: {d}/client.yaml\n  server:\n    log_level: info\n    listen_uri: 0.0.0.0:{PORT}\n    profiles_path: /etc/crowdsec/profiles.yaml\n    console_path: {d}/console.yaml\n\
prometheus:\n  enabled: false\n"
        );
        fs::write(dir.path().join("config.yaml"), cfg).unwrap();
        let mut l = Lapi {
            dir,
            ns: ns.to_string(),
            child: None,
        };
        l.run();
        // cscli's own machine, for the commands that go through the API (`alerts list`).
        let creds = l.dir.path().join("client.yaml");
        l.cscli(&[
            "machines",
            "add",
            "test-cscli",
            "--auto",
            "-f",
            creds.to_str().unwrap(),
        ]);
        l
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("crowdsec_api.log")).unwrap_or_default()
            + &fs::read_to_string(self.dir.path().join("crowdsec.log")).unwrap_or_default()
    }

    /// Starts it and waits until it listens.
    pub fn run(&mut self) {
        let before = self.log().matches("Local API listening").count();
        let out = fs::File::create(self.dir.path().join("stdout")).unwrap();
        let child = {
            let _lock = exec_lock();
            Command::new("ip")
                .args(["netns", "exec", &self.ns, "crowdsec", "-c"])
                .arg(self.config())
                .arg("-no-cs")
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .unwrap()
        };
        self.child = Some(child);
        wait_for(20, "LAPI listening", || {
            self.log().matches("Local API listening").count() > before
        });
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    /// `cscli -c CONFIG args...` in LAPI's namespace; fails with its output.
    pub fn cscli(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "cscli", "-c"])
            .arg(self.config())
            .args(args)
            .output()
            .unwrap();
        let text = printed(&out);
        assert!(out.status.success(), "cscli {}: {text}", args.join(" "));
        text
    }

    /// A machine (watcher) and a bouncer, both named `name`.
    pub fn add_pbx(&self, name: &str) {
        let creds = self.dir.path().join(format!("{name}.yaml"));
        self.cscli(&[
            "machines",
            "add",
            name,
            "--password",
            &format!("pw-{name}"),
            "-f",
            creds.to_str().unwrap(),
        ]);
        self.cscli(&["bouncers", "add", name, "-k", &format!("key-{name}")]);
    }

    /// The alerts LAPI holds, as `cscli alerts list -o raw` prints them (a CSV line each).
    pub fn alerts(&self) -> Vec<String> {
        self.cscli(&["alerts", "list", "-o", "raw", "-a", "-m"])
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(String::from)
            .collect()
    }
}

impl Drop for Lapi {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The config lines of a PBX that pushes and pulls as `name`.
pub fn pbx_config(url: &str, name: &str, poll: Duration) -> String {
    format!(
        "backend = nft\nnft = /usr/sbin/nft\ncrowdsec_url = {url}\ncrowdsec_login = {name}\n\
         crowdsec_password = pw-{name}\ncrowdsec_bouncer_key = key-{name}\ncrowdsec_poll = {}\n",
        poll.as_secs()
    )
}
