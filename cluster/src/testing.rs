//! etcd clusters on loopback for tests (the `testing` feature): members
//! started from the `etcd` binary on free ports, each killable and
//! restartable, their data in a temporary directory.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Options to reach `endpoints` under `prefix`, without TLS or a user.
pub fn options(endpoints: Vec<String>, prefix: &str) -> crate::EtcdOptions {
    crate::EtcdOptions {
        endpoints,
        prefix: prefix.into(),
        user: None,
        password: None,
        ca_file: None,
        cert_file: None,
        key_file: None,
        dial_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(3),
    }
}

/// A member named `name`, whose API is nowhere.
pub fn member(name: &str) -> oms_actors::cluster_view::Member {
    oms_actors::cluster_view::Member {
        name: name.into(),
        url: format!("http://{name}.invalid"),
        started_at: chrono::Utc::now(),
        version: "test".into(),
    }
}

/// Whether the `etcd` binary can be run. Under `REQUIRE_ETCD=1` (CI) its
/// absence is a failure, not a skip.
pub fn available() -> bool {
    let found = Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found && std::env::var("REQUIRE_ETCD").as_deref() == Ok("1") {
        panic!("etcd is required (REQUIRE_ETCD=1) but cannot be run");
    }
    if !found {
        eprintln!("skipped: no etcd binary (apt-get install etcd-server)");
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One member.
#[derive(Debug)]
struct Node {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

/// A cluster of etcd members, stopped on drop.
#[derive(Debug)]
pub struct EtcdCluster {
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
    initial: String,
    tls: Option<Tls>,
}

/// Files of a test certificate authority: etcd serves with `server`, and
/// asks clients for a certificate it signed.
#[derive(Debug, Clone)]
pub struct Tls {
    /// The CA's certificate (what clients trust).
    pub ca: PathBuf,
    /// etcd's certificate and key, for 127.0.0.1.
    pub server: (PathBuf, PathBuf),
    /// A client certificate and key.
    pub client: (PathBuf, PathBuf),
}

impl Tls {
    /// Makes a CA, a server certificate for 127.0.0.1 and a client
    /// certificate in `dir` with the `openssl` command.
    pub fn make(dir: &std::path::Path) -> Tls {
        let run = |args: &[&str]| {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("openssl runs");
            assert!(status.success(), "openssl {args:?}");
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=oms-test-ca",
        ]);
        for (name, ext) in [
            (
                "server",
                "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth",
            ),
            ("client", "extendedKeyUsage=clientAuth"),
        ] {
            std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
            run(&[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ]);
            run(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ]);
        }
        Tls {
            ca: dir.join("ca.pem"),
            server: (dir.join("server.pem"), dir.join("server.key")),
            client: (dir.join("client.pem"), dir.join("client.key")),
        }
    }
}

impl EtcdCluster {
    /// Starts `size` members and waits until the cluster answers.
    pub async fn start(size: usize) -> EtcdCluster {
        EtcdCluster::start_with(size, None).await
    }

    /// Starts one member that serves TLS and wants client certificates.
    pub async fn start_tls(tls: Tls) -> EtcdCluster {
        EtcdCluster::start_with(1, Some(tls)).await
    }

    async fn start_with(size: usize, tls: Option<Tls>) -> EtcdCluster {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let nodes: Vec<Node> = (0..size)
            .map(|n| Node {
                name: format!("etcd{n}"),
                client_port: free_port(),
                peer_port: free_port(),
                child: None,
            })
            .collect();
        let initial = nodes
            .iter()
            .map(|n| format!("{}=http://127.0.0.1:{}", n.name, n.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster {
            dir,
            nodes,
            initial,
            tls,
        };
        for n in 0..size {
            cluster.spawn(n);
        }
        if cluster.tls.is_none() {
            cluster.wait_ready(Duration::from_secs(30)).await;
        }
        cluster
    }

    fn spawn(&mut self, n: usize) {
        let node = &self.nodes[n];
        let data = self.dir.path().join(&node.name);
        let log = std::fs::File::create(self.dir.path().join(format!("{}.log", node.name)))
            .expect("a log file");
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://127.0.0.1:{}", node.client_port);
        let peer = format!("http://127.0.0.1:{}", node.peer_port);
        let mut command = Command::new("etcd");
        if let Some(tls) = &self.tls {
            command
                .arg("--cert-file")
                .arg(&tls.server.0)
                .arg("--key-file")
                .arg(&tls.server.1)
                .arg("--trusted-ca-file")
                .arg(&tls.ca)
                .arg("--client-cert-auth");
        }
        let child = command
            .args(["--name", &node.name])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "oms-test"])
            // Quick elections: a lost member is noticed in half a second.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd starts");
        self.nodes[n].child = Some(child);
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.nodes
            .iter()
            .map(|n| format!("{scheme}://127.0.0.1:{}", n.client_port))
            .collect()
    }

    /// Kills member `n` (SIGKILL).
    pub fn kill(&mut self, n: usize) {
        if let Some(mut child) = self.nodes[n].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `n` again on its data.
    pub fn restart(&mut self, n: usize) {
        if self.nodes[n].child.is_none() {
            self.spawn(n);
        }
    }

    /// Waits until a key can be written through any member.
    pub async fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(mut client) = etcd_client::Client::connect(
                self.endpoints(),
                Some(
                    etcd_client::ConnectOptions::new()
                        .with_timeout(Duration::from_secs(2))
                        .with_require_leader(true),
                ),
            )
            .await
                && client.put("/ready", "1", None).await.is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not become ready; logs in {}",
                self.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Where the members' logs are.
    pub fn logs(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for n in 0..self.nodes.len() {
            self.kill(n);
        }
    }
}
