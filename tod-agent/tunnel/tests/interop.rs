//! Interoperability with a standard WireGuard: wireguard-go (with `wg`) in a network namespace the
//! test creates, our side in a second one, joined by a veth pair; every address lives inside those
//! namespaces. Both directions: our agent tunnel reaching a TCP service behind wireguard-go, and
//! wireguard-go as a client of our gateway.
//!
//! Our side runs in its namespace as this same test executable, started again through
//! `ip netns exec` with a role in `TOD_TUNNEL_INTEROP_ROLE` (see [`helper`]).
//!
//! Needs root, `ip` (iproute2), `wireguard-go`, `wg` and `python3` (the TCP peer inside the
//! wireguard-go namespace). Without them the tests say so and pass, unless `TOD_REQUIRE_ORACLES`
//! is set, as `.ci/run` does.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tod_tunnel::PrivateKey;

const ROLE: &str = "TOD_TUNNEL_INTEROP_ROLE";
const PAYLOAD: usize = 256 * 1024;
const SERVICE_PORT: u16 = 7000;

/// Python TCP peers run inside the wireguard-go namespace.
const PY_ECHO_SERVER: &str = r#"
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(8)
print("listening", flush=True)
def serve(c):
    while True:
        b = c.recv(65536)
        if not b: break
        c.sendall(b)
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

const PY_ECHO_CLIENT: &str = r#"
import socket, sys, threading, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = bytes((i * 7) % 251 for i in range(n))
deadline = time.time() + 30
while True:
    try:
        c = socket.create_connection((host, port), timeout=5); break
    except OSError:
        if time.time() > deadline: raise
        time.sleep(0.3)
c.settimeout(30)
t = threading.Thread(target=c.sendall, args=(data,)); t.start()
got = b""
while len(got) < n:
    b = c.recv(65536)
    if not b: break
    got += b
t.join()
assert got == data, f"echo differs: {len(got)} of {n} bytes"
print("python echo ok", n)
"#;

fn required() -> bool {
    std::env::var_os("TOD_REQUIRE_ORACLES").is_some()
}

/// Why this machine cannot run the namespace tests, if it cannot.
fn missing_prerequisite() -> Option<String> {
    for tool in ["ip", "wireguard-go", "wg", "python3"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            return Some(format!(
                "{tool} is not installed (apt-get install iproute2 wireguard-go wireguard-tools)"
            ));
        }
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun is missing".into());
    }
    static PROBES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let probe = format!("todwg-probe-{}-{n}", std::process::id());
    match Command::new("ip").args(["netns", "add", &probe]).output() {
        Ok(o) if o.status.success() => {
            let _ = Command::new("ip").args(["netns", "del", &probe]).output();
            None
        }
        Ok(o) => Some(format!(
            "cannot create network namespaces: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run ip: {e}")),
    }
}

fn skip_or_fail(why: &str) {
    assert!(!required(), "WireGuard interop test cannot run: {why}");
    eprintln!("skipping the WireGuard interop test: {why}");
}

fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("spawn");
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Two namespaces joined by a veth pair, removed (with what runs in them) on drop.
struct Lab {
    wg_ns: String,
    our_ns: String,
    wg_if: String,
    children: Vec<Child>,
    dir: std::path::PathBuf,
}

const WG_SIDE_IP: &str = "192.168.77.1";
const OUR_SIDE_IP: &str = "192.168.77.2";

impl Lab {
    fn new(tag: &str) -> Self {
        let id = format!("{}{}", tag, std::process::id() % 100_000);
        let lab = Lab {
            wg_ns: format!("todwg-{id}-wg"),
            our_ns: format!("todwg-{id}-us"),
            wg_if: format!("twg{id}"),
            children: Vec::new(),
            dir: std::env::temp_dir().join(format!("todwg-{id}")),
        };
        std::fs::create_dir_all(&lab.dir).unwrap();
        run(&["ip", "netns", "add", &lab.wg_ns]);
        run(&["ip", "netns", "add", &lab.our_ns]);
        let (va, vb) = (format!("tva{id}"), format!("tvb{id}"));
        run(&[
            "ip",
            "link",
            "add",
            &va,
            "netns",
            &lab.wg_ns,
            "type",
            "veth",
            "peer",
            "name",
            &vb,
            "netns",
            &lab.our_ns,
        ]);
        for (ns, dev, ip) in [(&lab.wg_ns, &va, WG_SIDE_IP), (&lab.our_ns, &vb, OUR_SIDE_IP)] {
            run(&["ip", "-n", ns, "addr", "add", &format!("{ip}/24"), "dev", dev]);
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        lab
    }

    fn spawn_in(&mut self, ns: &str, args: &[&str], envs: &[(&str, String)]) -> usize {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).args(args).stdin(Stdio::null());
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        self.children.push(cmd.spawn().expect("spawn in namespace"));
        self.children.len() - 1
    }

    /// wireguard-go on the wg side, configured by `wg set` with `settings`, holding `address`.
    fn wireguard_go(&mut self, key: &PrivateKey, address: &str, settings: &[&str]) {
        let ns = self.wg_ns.clone();
        let ifname = self.wg_if.clone();
        self.spawn_in(
            &ns,
            &["wireguard-go", "-f", &ifname],
            &[("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1".into())],
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Command::new("ip")
            .args(["netns", "exec", &ns, "wg", "show", &ifname])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            assert!(Instant::now() < deadline, "wireguard-go did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        let key_file = self.dir.join("wg.key");
        std::fs::write(&key_file, key.to_base64()).unwrap();
        let mut args = vec!["ip", "netns", "exec", &ns, "wg", "set", &ifname, "private-key"];
        let key_path = key_file.to_string_lossy().into_owned();
        args.push(&key_path);
        args.extend_from_slice(settings);
        run(&args);
        run(&["ip", "-n", &ns, "addr", "add", address, "dev", &ifname]);
        run(&["ip", "-n", &ns, "link", "set", &ifname, "up"]);
    }

    /// Waits for a child to exit; its output, or a panic with what it printed after `within`.
    fn wait(&mut self, i: usize, within: Duration) -> Output {
        let deadline = Instant::now() + within;
        loop {
            if self.children[i].try_wait().unwrap().is_some() {
                let child = self.children.swap_remove(i);
                return child.wait_with_output().unwrap();
            }
            if Instant::now() > deadline {
                let child = self.children.swap_remove(i);
                let _ = Command::new("kill").arg(child.id().to_string()).status();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "timed out; stdout: {} stderr: {}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for a line starting with `prefix` on a child's stdout.
    fn wait_line(&mut self, i: usize, prefix: &str, within: Duration) -> String {
        let stdout = self.children[i].stdout.take().expect("stdout piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(_) => panic!("no {prefix:?} line within {within:?}"),
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Deleting a namespace takes its veth end and wireguard-go's interface with it.
        let _ = Command::new("ip").args(["netns", "del", &self.wg_ns]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.our_ns]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", self.wg_if));
    }
}

/// This executable, running only [`helper`] (the role goes in the environment).
fn helper_command() -> Vec<String> {
    let exe = std::env::current_exe().unwrap().to_string_lossy().into_owned();
    vec![
        exe,
        "--exact".into(),
        "helper".into(),
        "--ignored".into(),
        "--nocapture".into(),
    ]
}

#[test]
fn wg_pubkey_agrees_with_our_key_derivation() {
    if let Some(why) = missing_prerequisite() {
        return skip_or_fail(&why);
    }
    let key = PrivateKey::generate().unwrap();
    let mut child = Command::new("wg")
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(key.to_base64().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        key.public_key().to_string()
    );
}

#[test]
fn our_agent_tunnel_reaches_a_service_behind_wireguard_go() {
    if let Some(why) = missing_prerequisite() {
        return skip_or_fail(&why);
    }
    let mut lab = Lab::new("c");
    let theirs = PrivateKey::generate().unwrap();
    let ours = PrivateKey::generate().unwrap();
    let ours_public = ours.public_key().to_string();
    lab.wireguard_go(
        &theirs,
        "10.99.0.1/16",
        &[
            "listen-port",
            "51820",
            "peer",
            &ours_public,
            "allowed-ips",
            "10.99.1.2/32",
        ],
    );
    let wg_ns = lab.wg_ns.clone();
    let echo = lab.spawn_in(
        &wg_ns,
        &["python3", "-c", PY_ECHO_SERVER, "10.99.0.1", &SERVICE_PORT.to_string()],
        &[],
    );
    lab.wait_line(echo, "listening", Duration::from_secs(10));

    let our_ns = lab.our_ns.clone();
    let cmd = helper_command();
    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let client = lab.spawn_in(
        &our_ns,
        &args,
        &[
            (ROLE, "client".into()),
            ("TOD_INTEROP_KEY", ours.to_base64()),
            ("TOD_INTEROP_PEER", theirs.public_key().to_string()),
            ("TOD_INTEROP_ENDPOINT", format!("{WG_SIDE_IP}:51820")),
            ("TOD_INTEROP_ADDRESS", "10.99.1.2".into()),
            ("TOD_INTEROP_TARGET", format!("10.99.0.1:{SERVICE_PORT}")),
        ],
    );
    let out = lab.wait(client, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("tunnel interop ok"),
        "our client through wireguard-go failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // wireguard-go saw the handshake and the bytes.
    let show = run(&[
        "ip",
        "netns",
        "exec",
        &wg_ns,
        "wg",
        "show",
        &lab.wg_if.clone(),
        "transfer",
    ]);
    let transfer = String::from_utf8_lossy(&show.stdout);
    let received: u64 = transfer
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        received > PAYLOAD as u64,
        "wireguard-go received {received} bytes: {transfer}"
    );
}

#[test]
fn wireguard_go_is_a_client_of_our_gateway() {
    if let Some(why) = missing_prerequisite() {
        return skip_or_fail(&why);
    }
    let mut lab = Lab::new("g");
    let theirs = PrivateKey::generate().unwrap();
    let ours = PrivateKey::generate().unwrap();
    let our_ns = lab.our_ns.clone();
    let cmd = helper_command();
    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let gateway = lab.spawn_in(
        &our_ns,
        &args,
        &[
            (ROLE, "gateway".into()),
            ("TOD_INTEROP_KEY", ours.to_base64()),
            ("TOD_INTEROP_PEER", theirs.public_key().to_string()),
            ("TOD_INTEROP_ADDRESS", "10.99.1.5".into()),
            ("TOD_INTEROP_LISTEN", format!("{OUR_SIDE_IP}:51820")),
        ],
    );
    lab.wait_line(gateway, "gateway ready", Duration::from_secs(20));
    let ours_public = ours.public_key().to_string();
    let endpoint = format!("{OUR_SIDE_IP}:51820");
    lab.wireguard_go(
        &theirs,
        "10.99.1.5/16",
        &[
            "peer",
            &ours_public,
            "endpoint",
            &endpoint,
            "allowed-ips",
            "10.99.0.0/16",
            "persistent-keepalive",
            "5",
        ],
    );
    let wg_ns = lab.wg_ns.clone();
    let client = lab.spawn_in(
        &wg_ns,
        &[
            "python3",
            "-c",
            PY_ECHO_CLIENT,
            "10.99.0.1",
            &SERVICE_PORT.to_string(),
            &PAYLOAD.to_string(),
        ],
        &[],
    );
    let out = lab.wait(client, Duration::from_secs(60));
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("python echo ok"),
        "wireguard-go through our gateway failed: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Our side of the interop tests, run inside its namespace by the tests above (does nothing when
/// run any other way).
#[test]
#[ignore = "run by the interop tests inside a network namespace"]
fn helper() {
    let Ok(role) = std::env::var(ROLE) else { return };
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key: PrivateKey = env("TOD_INTEROP_KEY").parse().unwrap();
    let peer: tod_tunnel::Key = env("TOD_INTEROP_PEER").parse().unwrap();
    let address: Ipv4Addr = env("TOD_INTEROP_ADDRESS").parse().unwrap();
    match role.as_str() {
        "client" => rt.block_on(async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let tunnel = tod_tunnel::client::Tunnel::start(tod_tunnel::client::ClientConfig {
                private_key: key,
                server_key: peer,
                endpoint: env("TOD_INTEROP_ENDPOINT"),
                address,
                prefix: 16,
                keepalive: Some(25),
                stack: Default::default(),
            });
            let target: SocketAddrV4 = env("TOD_INTEROP_TARGET").parse().unwrap();
            let stream = tunnel.connect(target).await.unwrap();
            let (mut r, mut w) = tokio::io::split(stream);
            let data: Vec<u8> = (0..PAYLOAD).map(|i| (i * 7 % 251) as u8).collect();
            let expect = data.clone();
            let send = tokio::spawn(async move { w.write_all(&data).await });
            let mut got = vec![0u8; PAYLOAD];
            tokio::time::timeout(Duration::from_secs(40), r.read_exact(&mut got))
                .await
                .expect("echo within 40 s")
                .unwrap();
            send.await.unwrap().unwrap();
            assert!(got == expect, "echo differs");
            // The status is refreshed four times a second.
            tokio::time::sleep(Duration::from_millis(600)).await;
            let status = tunnel.status();
            assert!(status.up && status.rx_bytes >= PAYLOAD as u64, "{status:?}");
            println!("tunnel interop ok {PAYLOAD} bytes; {status:?}");
        }),
        "gateway" => rt.block_on(async {
            let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let echo_addr = echo.local_addr().unwrap();
            tokio::spawn(async move {
                while let Ok((mut s, _)) = echo.accept().await {
                    tokio::spawn(async move {
                        let (mut r, mut w) = s.split();
                        let _ = tokio::io::copy(&mut r, &mut w).await;
                    });
                }
            });
            let gw = tod_tunnel::gateway::Gateway::start(tod_tunnel::gateway::GatewayConfig {
                listen: env("TOD_INTEROP_LISTEN").parse().unwrap(),
                private_key: key,
                address: Ipv4Addr::new(10, 99, 0, 1),
                prefix: 16,
                forwards: vec![(SERVICE_PORT, echo_addr)],
                stack: Default::default(),
            })
            .await
            .unwrap();
            gw.set_peers(vec![tod_tunnel::gateway::PeerConfig {
                key: peer,
                address,
                label: "wireguard-go".into(),
            }])
            .await
            .unwrap();
            println!("gateway ready");
            tokio::time::sleep(Duration::from_secs(90)).await;
        }),
        other => panic!("unknown role {other}"),
    }
}
