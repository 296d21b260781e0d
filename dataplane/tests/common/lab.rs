//! The veth/network-namespace labs (`scripts/veth-lab`, `scripts/soft-unicast-lab`) for tests
//! that run `transitd run`: made by each test, removed when the test ends, even when it fails.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::root;

/// Customer Acme in the veth lab: 203.0.113.0/24 behind a GRE tunnel to the `cust`
/// namespace's router, FTP to 203.0.113.100 allowed, everything else dropped.
pub const ACME: &str = r#"
[server]
anycast = "192.0.2.1"
next_hop = "10.2.0.1"          # the lab's upstream router, resolved from the neighbour table
[dos.sanity]
bogons = false                 # the lab's sender is 10.1.0.2
[[customer]]
name = "acme"
prefixes = ["203.0.113.0/24"]
[[customer.tunnel]]
name = "acme-gre"
remote = "198.51.100.1"
[[customer.route]]
prefix = "203.0.113.0/24"
tunnel = "acme-gre"
[customer.firewall]
default = "drop"
[[customer.firewall.rule]]
name = "ftp"
match = "ip.dst == 203.0.113.100 and tcp.dstport in {20..21}"
action = "accept"
"#;

/// [`ACME`] in two: its server sections, and its customer (for one etcd key each).
pub fn acme_parts() -> (&'static str, &'static str) {
    ACME.split_at(ACME.find("[[customer]]").expect("ACME has a customer"))
}

/// [`ACME`]'s customer without its firewall: acme, its prefix, its tunnel and its route, for
/// a test to give rules of its own.
pub fn acme_customer() -> &'static str {
    let (_, customer) = acme_parts();
    &customer[..customer.find("[customer.firewall]").expect("ACME has a firewall")]
}

/// Waits until `cond` holds, failing the test after `limit`; returns how long it took.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// Lab tests share two cores and the kernel's XDP state: one at a time.
pub static SERIAL: Mutex<()> = Mutex::new(());

/// A lab of namespaces `<prefix>-<name>`: `snd`, `up`, `dut`, `cust` (veth-lab), or `inet`,
/// `net`, `a1`, `a2`, `b1` (soft-unicast-lab).
pub struct Lab {
    pub prefix: String,
    /// The script that made it (and removes it).
    script: &'static str,
}

impl Lab {
    /// Creates the lab (root needed); `queues` rx/tx queues on the up<->dut pair.
    pub fn up(name: &str, queues: u32) -> Lab {
        Lab::up_with(name, queues, false)
    }

    /// [`Lab::up`], with a second customer router namespace `cust2` if `cust2`.
    pub fn up_with(name: &str, queues: u32, cust2: bool) -> Lab {
        assert!(is_root(), "the veth lab tests need root (network namespaces, XDP): run them as root, as CI does");
        let prefix = format!("{name}{}", std::process::id() % 1000);
        let status = Command::new(root().join("scripts/veth-lab"))
            .args(["up", &prefix])
            .env("QUEUES", queues.to_string())
            .env("CUST2", if cust2 { "1" } else { "0" })
            .status()
            .expect("scripts/veth-lab");
        assert!(status.success(), "scripts/veth-lab up {prefix} failed");
        Lab { prefix, script: "scripts/veth-lab" }
    }

    /// The veth lab with `BGP=1`: no static routes to `dut` in `up`, and a second transitd
    /// host `dut2` (10.4.0.2 on `d1`, `up`'s side `u4`).
    pub fn bgp(name: &str) -> Lab {
        assert!(is_root(), "the veth lab tests need root (network namespaces, XDP): run them as root, as CI does");
        let prefix = format!("{name}{}", std::process::id() % 1000);
        let status =
            Command::new(root().join("scripts/veth-lab")).args(["up", &prefix]).env("BGP", "1").status().unwrap();
        assert!(status.success(), "scripts/veth-lab up {prefix} (BGP=1) failed");
        Lab { prefix, script: "scripts/veth-lab" }
    }

    /// Starts BIRD 2 in `ns` with configuration text `config`; stopped on drop.
    pub fn bird(&self, ns: &str, config: &str) -> Bird {
        let dir = std::env::temp_dir().join(format!("{}-{ns}-bird", self.prefix));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("bird.conf");
        std::fs::write(&conf, config).unwrap();
        let socket = dir.join("bird.ctl");
        let child = self
            .cmd(ns, "bird")
            .args(["-f", "-c", conf.to_str().unwrap(), "-s", socket.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("BIRD 2 (apt-get install bird2, or run .ci/run)");
        let bird = Bird { child, socket, dir };
        wait_for(&format!("BIRD in {ns}"), Duration::from_secs(10), || bird.socket.exists());
        bird
    }

    /// Creates the three-server soft-unicast lab (scripts/soft-unicast-lab).
    pub fn soft_unicast(name: &str) -> Lab {
        assert!(is_root(), "the veth lab tests need root (network namespaces, XDP): run them as root, as CI does");
        let prefix = format!("{name}{}", std::process::id() % 1000);
        let status = Command::new(root().join("scripts/soft-unicast-lab")).args(["up", &prefix]).status().unwrap();
        assert!(status.success(), "scripts/soft-unicast-lab up {prefix} failed");
        Lab { prefix, script: "scripts/soft-unicast-lab" }
    }

    /// A command run in namespace `ns` (`snd`, `up`, `dut`, `cust`).
    pub fn cmd(&self, ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &format!("{}-{ns}", self.prefix), program]);
        c
    }

    /// Runs a command in `ns`, panicking on failure, returning its output.
    pub fn run(&self, ns: &str, program: &str, args: &[&str]) -> Output {
        let out = self.cmd(ns, program).args(args).output().unwrap();
        assert!(out.status.success(), "{ns}: {program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    }

    /// The name of an interface of the lab (`s0`, `u0`, `d0`, `u1`, `c0`, `u2`).
    pub fn dev(&self, short: &str) -> String {
        format!("{}-{short}", self.prefix)
    }

    /// Sets the MTU of every interface of the lab (jumbo frames end to end).
    pub fn set_mtu(&self, mtu: u32) {
        for (ns, dev) in [("snd", "s0"), ("up", "u0"), ("up", "u1"), ("dut", "d0"), ("up", "u2"), ("cust", "c0")] {
            self.run(ns, "ip", &["link", "set", "dev", &self.dev(dev), "mtu", &mtu.to_string()]);
        }
    }

    /// The MAC of interface `short` in `ns`.
    pub fn mac(&self, ns: &str, short: &str) -> String {
        let out = self.run(ns, "cat", &[&format!("/sys/class/net/{}/address", self.dev(short))]);
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Starts `transitd run` in `dut` on `d0` with `config`, and waits for it to say it runs.
    pub fn transitd(&self, config: &str, extra: &[&str]) -> Transitd {
        self.transitd_on("dut", "d0", config, extra)
    }

    /// Starts `transitd run` in namespace `ns` on interface `dev` with `config`.
    pub fn transitd_on(&self, ns: &str, dev: &str, config: &str, extra: &[&str]) -> Transitd {
        self.transitd_env(ns, dev, config, extra, &[])
    }

    /// [`Lab::transitd_on`] with environment variables (`NOTIFY_SOCKET`, say).
    pub fn transitd_env(&self, ns: &str, dev: &str, config: &str, extra: &[&str], env: &[(&str, &str)]) -> Transitd {
        let path = std::env::temp_dir().join(format!("{}-{ns}.toml", self.prefix));
        std::fs::write(&path, config).unwrap();
        let mut args = vec!["--config", path.to_str().unwrap()];
        args.extend(extra);
        self.spawn_transitd(ns, dev, &args, path.clone(), env)
    }

    /// Starts `transitd run` in `dut` on `d0` with `args` saying where its configuration is
    /// (`--config-etcd ...`).
    pub fn transitd_from(&self, args: &[&str]) -> Transitd {
        self.spawn_transitd("dut", "d0", args, PathBuf::new(), &[])
    }

    fn spawn_transitd(&self, ns: &str, dev: &str, extra: &[&str], path: PathBuf, env: &[(&str, &str)]) -> Transitd {
        let log = std::env::temp_dir().join(format!("{}-{ns}.log", self.prefix));
        let child = self
            .cmd(ns, env!("CARGO_BIN_EXE_transitd"))
            .envs(env.iter().copied())
            .args(["run", "--iface", &self.dev(dev), "--idle-sleep-us", "50"])
            .args(["--stats-interval", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let t = Transitd { child: Some(child), log, config: path };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !t.log().contains("transitd: running on") {
            assert!(Instant::now() < deadline, "transitd did not start:\n{}", t.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        t
    }

    /// Turns namespace `ns` into an Open vSwitch GRE router (scripts/ovs-router) with a LAN
    /// namespace `lan` behind it holding host 203.0.113.10 and 2001:db8:acbe::10; GRE goes
    /// to the anycast address 192.0.2.1, and ICMP for `probe_ip` is returned into the tunnel.
    pub fn ovs_router(&self, ns: &str, dev: &str, ip: &str, gw: &str, lan: &str, probe_ip: &str) -> OvsRouter {
        self.ovs_router_with(ns, dev, ip, gw, lan, probe_ip, &[])
    }

    /// [`Lab::ovs_router`] with more of `scripts/ovs-router`'s options (`--no-df`, ...).
    #[allow(clippy::too_many_arguments)] // the script's own options, one each
    pub fn ovs_router_with(
        &self,
        ns: &str,
        dev: &str,
        ip: &str,
        gw: &str,
        lan: &str,
        probe_ip: &str,
        options: &[&str],
    ) -> OvsRouter {
        let name = format!("{}-{ns}", self.prefix);
        let out = Command::new(root().join("scripts/ovs-router"))
            .args(["up", &name, "--ns", &name, "--dev", &self.dev(dev), "--ip", ip, "--gw", gw])
            .args(["--remote", "192.0.2.1", "--lan-ns", &format!("{}-{lan}", self.prefix)])
            .args(["--lan-ip4", "203.0.113.10/24", "--lan-ip6", "2001:db8:acbe::10/64", "--probe-ip", probe_ip])
            .args(options)
            .output()
            .expect("scripts/ovs-router");
        assert!(out.status.success(), "scripts/ovs-router up {name}: {}", String::from_utf8_lossy(&out.stderr));
        OvsRouter { name }
    }

    /// Starts a capture of `short` in `ns` into a pcap file; stop it with [`Capture::finish`].
    pub fn capture(&self, ns: &str, short: &str) -> Capture {
        self.capture_on(ns, &self.dev(short), short, "")
    }

    /// Starts a capture of interface `dev` in `ns` (`any` for all) into `<prefix>-<name>.pcap`,
    /// of what the tcpdump `filter` selects (everything if empty).
    pub fn capture_on(&self, ns: &str, dev: &str, name: &str, filter: &str) -> Capture {
        let file = std::env::temp_dir().join(format!("{}-{name}.pcap", self.prefix));
        let mut child = self
            .cmd(ns, "tcpdump")
            // Immediate mode: without it, packets wait in a TPACKET_V3 block for up to a
            // second, and those still waiting when the capture is stopped are lost ("50
            // received by filter", "0 captured"). Immediate mode rings hold a frame per
            // slot, so the ring gets 64 MiB (-B, KiB) to ride out a busy moment.
            .args(["-n", "-U", "--immediate-mode", "-B", "65536", "-i", dev, "-w", file.to_str().unwrap()])
            .args((!filter.is_empty()).then_some(filter))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // tcpdump says "listening on" once its socket is bound: a fixed sleep was too short
        // on a loaded CI machine, and the first packets were not in the capture.
        let stderr = child.stderr.take().unwrap();
        let (ready, listening) = std::sync::mpsc::channel();
        let said = std::thread::spawn(move || {
            use std::io::BufRead;
            let mut said = String::new();
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening on") {
                    let _ = ready.send(());
                }
                said.push_str(&line);
                said.push('\n');
            }
            said
        });
        listening.recv_timeout(Duration::from_secs(20)).expect("tcpdump did not start listening within 20 s");
        Capture { child, file, said: Some(said) }
    }
}

/// An Open vSwitch router in a lab namespace; stopped (and its LAN removed) on drop.
pub struct OvsRouter {
    name: String,
}

impl Drop for OvsRouter {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/ovs-router")).args(["down", &self.name]).status();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(root().join(self.script)).args(["down", &self.prefix]).status();
        // What its runs kept in transitd's runtime directory: a lock file per interface
        // (which stays when the lock goes), and the tunables a killed run could not restore.
        let ours = format!("{}-", self.prefix);
        if let Ok(entries) = std::fs::read_dir("/run/transitd") {
            for entry in entries.flatten().filter(|e| e.file_name().to_string_lossy().starts_with(&ours)) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        // The test is done with what it wrote under the lab's name (logs, configurations,
        // captures, daemons' directories): kept when it failed, to read; gone when it
        // passed (thousands piled up in /tmp).
        if std::thread::panicking() {
            return;
        }
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&ours) {
                let path = entry.path();
                let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            }
        }
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false)
}

/// A running `transitd run`.
pub struct Transitd {
    child: Option<Child>,
    log: PathBuf,
    /// The configuration file it runs with.
    pub config: PathBuf,
}

impl Transitd {
    /// What it has logged so far (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Replaces the configuration file and sends SIGHUP.
    pub fn reload(&self, config: &str) {
        std::fs::write(&self.config, config).unwrap();
        self.hup();
    }

    /// Sends SIGHUP, the configuration file as it is.
    pub fn hup(&self) {
        let pid = self.child.as_ref().unwrap().id();
        let _ = Command::new("kill").args(["-HUP", &pid.to_string()]).status();
    }

    /// Kills it with SIGKILL (no chance to clean up) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Sends SIGTERM and returns its exit status and final report (stdout).
    pub fn stop(mut self) -> (i32, String) {
        let child = self.child.take().unwrap();
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let out = child.wait_with_output().unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Transitd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A BIRD daemon in a lab namespace.
pub struct Bird {
    child: Child,
    /// Its control socket.
    pub socket: PathBuf,
    /// Its directory (configuration, socket).
    pub dir: PathBuf,
}

impl Bird {
    /// Its process id (`ip netns exec` runs BIRD in its own place).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `birdc` on its socket: the command's output.
    pub fn birdc(&self, command: &str) -> String {
        let out = Command::new("birdc").arg("-s").arg(&self.socket).args(command.split_whitespace()).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running capture.
pub struct Capture {
    child: Child,
    pub file: PathBuf,
    /// What tcpdump writes to stderr, whole once it has exited.
    said: Option<std::thread::JoinHandle<String>>,
}

impl Capture {
    /// Stops the capture (letting tcpdump flush) and returns the file. Panics if tcpdump
    /// says the kernel dropped packets it should have captured: the capture is a test's
    /// oracle, and an incomplete one would blame transitd for what the capture lost.
    pub fn finish(mut self) -> PathBuf {
        std::thread::sleep(Duration::from_millis(500));
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
        let said = self.said.take().and_then(|h| h.join().ok()).unwrap_or_default();
        let dropped: u64 = said
            .lines()
            .find(|l| l.ends_with("dropped by kernel")) // "1 packet ...", "2 packets ..."
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        assert_eq!(dropped, 0, "the capture of {} lost packets:\n{said}", self.file.display());
        self.file.clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        // A test that fails before finish() leaves no tcpdump behind.
        if self.said.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// GRE frames from the anycast address the upstream router receives for 10 FTP SYNs to
/// Acme sent from `snd` (Acme's firewall lets them through).
pub fn forwarded_ftp_syns(lab: &Lab) -> usize {
    let c = lab.capture("up", "u1");
    scapy_send(lab, "snd", "[IP(dst='203.0.113.100')/TCP(sport=40000+i, dport=21, flags='S') for i in range(10)]");
    super::tshark_frames(&c.finish(), "gre and ip.src == 192.0.2.1 and not icmp", &[]).len()
}

/// Configuration text that drops, before any customer's rules, the sources the list file
/// at `path` names (`[[list]] blocked` and a `[[dos.rule]]` over it).
pub fn blocking_list(path: &std::path::Path) -> String {
    format!(
        "\n[[list]]\nname = \"blocked\"\nfile = \"{}\"\n\n[[dos.rule]]\nname = \"blocked\"\n\
         match = \"ip.src in $blocked\"\naction = \"drop\"\n",
        path.display()
    )
}

/// Sends packets from `ns` with scapy; `packets` is a Python expression for a list.
pub fn scapy_send(lab: &Lab, ns: &str, packets: &str) {
    let script = format!("from scapy.all import *\nsend({packets}, verbose=0)\n");
    lab.run(ns, "/usr/bin/python3", &["-c", &script]);
}
