//! A real `redis-server` for one test: on a free loopback port, without
//! persistence, stopped by its PID in `Drop`; it can be frozen (SIGSTOP),
//! thawed (SIGCONT), and restarted empty on the same port.
#![allow(dead_code)] // each test crate uses part of the fixture

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REDIS_SERVER: &str = "redis-server";

/// A running redis-server; killed in `Drop`.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    /// Arguments after the port (a replica's `--replicaof`, say).
    extra: Vec<String>,
    /// Files of its own to remove when it stops (a Sentinel's
    /// configuration, a TLS server's certificates).
    scratch: Option<std::path::PathBuf>,
    /// Whether it speaks only TLS (then it is not PINGed in plain text).
    tls: bool,
}

impl RedisServer {
    /// A new server on a free port, or `None` (the test says it skipped)
    /// when redis-server is not installed; under CI that is a failure.
    pub fn start(test: &str) -> Option<Self> {
        let have = Command::new(REDIS_SERVER)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !have {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI must run the Redis tests: install Debian's redis-server"
            );
            eprintln!(
                "SKIPPED {test}: redis-server is not installed (apt-get install redis-server)"
            );
            return None;
        }
        let port = free_port();
        let mut server = RedisServer {
            port,
            child: None,
            extra: Vec::new(),
            scratch: None,
            tls: false,
        };
        server.restart();
        Some(server)
    }

    /// A server that speaks only TLS (`rediss://`), on a free port, with a
    /// certificate for 127.0.0.1 signed by a CA made here (with openssl);
    /// answers it and the CA's PEM file.
    pub fn start_tls(test: &str) -> Option<(Self, std::path::PathBuf)> {
        let mut server = RedisServer::start(test)?;
        server.stop();
        let dir = std::env::temp_dir().join(format!("sseloop-tls-{}", server.port));
        std::fs::create_dir_all(&dir).unwrap();
        let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let openssl = |args: &[&str]| {
            let status = Command::new("openssl")
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run openssl");
            assert!(status.success(), "openssl {args:?}");
        };
        std::fs::write(
            path("leaf.ext"),
            "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\n",
        )
        .unwrap();
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=sseloop test CA",
            "-keyout",
            &path("ca.key"),
            "-out",
            &path("ca.pem"),
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &path("leaf.key"),
            "-out",
            &path("leaf.csr"),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &path("leaf.csr"),
            "-CA",
            &path("ca.pem"),
            "-CAkey",
            &path("ca.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &path("leaf.ext"),
            "-out",
            &path("leaf.pem"),
        ]);
        let port = server.port.to_string();
        server.extra = vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port,
            "--tls-cert-file".into(),
            path("leaf.pem"),
            "--tls-key-file".into(),
            path("leaf.key"),
            "--tls-ca-cert-file".into(),
            path("ca.pem"),
            "--tls-auth-clients".into(),
            "no".into(),
        ];
        server.tls = true;
        server.scratch = Some(dir.clone());
        server.restart();
        Some((server, dir.join("ca.pem")))
    }

    /// A replica of `master`, on a free port.
    pub fn replica_of(master: &RedisServer) -> Self {
        let mut server = RedisServer {
            port: free_port(),
            child: None,
            extra: vec![
                "--replicaof".into(),
                "127.0.0.1".into(),
                master.port.to_string(),
            ],
            scratch: None,
            tls: false,
        };
        server.restart();
        server
    }

    /// A Sentinel watching `master` as `name` (quorum 1), quick to call it
    /// down (500 ms) and to fail over.
    pub fn sentinel_for(master: &RedisServer, name: &str) -> Self {
        let port = free_port();
        let conf = std::env::temp_dir().join(format!("sseloop-sentinel-{port}.conf"));
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\n\
                 sentinel monitor {name} 127.0.0.1 {} 1\n\
                 sentinel down-after-milliseconds {name} 500\n\
                 sentinel failover-timeout {name} 3000\n\
                 sentinel parallel-syncs {name} 1\n",
                master.port
            ),
        )
        .expect("write the Sentinel's configuration");
        let child = Command::new(REDIS_SERVER)
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server --sentinel");
        let server = RedisServer {
            port,
            child: Some(child),
            extra: Vec::new(),
            scratch: Some(conf),
            tls: false,
        };
        server.wait_for_pong();
        server
    }

    /// Starts (again) on the same port, empty: no persistence.
    pub fn restart(&mut self) {
        self.stop();
        // Its own empty directory: a replica writes the RDB of its first
        // sync to its directory, and a server started where one lies loads
        // it (a "restart empty" was then not empty).
        let dir = self.dir();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory for redis-server");
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&dir)
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        if self.tls {
            self.wait_for_port();
        } else {
            self.wait_for_pong();
        }
    }

    /// The directory the server runs in, its own.
    fn dir(&self) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("sseloop-redis-{}", self.port))
    }

    /// Waits (with a deadline) until the port takes connections.
    fn wait_for_port(&self) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20)); // the server is starting: poll again
        }
    }

    /// Sends one command (inline form) and answers Redis's first reply line.
    pub fn command(&self, line: &str) -> String {
        use std::io::{BufRead, Write};
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut con = std::net::TcpStream::connect(addr).expect("connect to redis");
        con.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        con.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        let mut reply = String::new();
        std::io::BufReader::new(con).read_line(&mut reply).unwrap();
        reply.trim_end().to_owned()
    }

    /// The URL hubs connect to.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn pid(&self) -> String {
        self.child.as_ref().expect("running").id().to_string()
    }

    /// SIGSTOP: Redis accepts connections but answers nothing.
    pub fn freeze(&self) {
        signal("-STOP", &self.pid());
    }

    /// SIGCONT: Redis runs again and works through what waited.
    pub fn thaw(&self) {
        signal("-CONT", &self.pid());
    }

    /// Stops it (by its PID) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A frozen server must be thawed to exit on SIGKILL promptly.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Reads `+PONG` with a deadline, retrying the connection until the
    /// server listens.
    fn wait_for_pong(&self) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                stream
                    .set_read_timeout(Some(Duration::from_secs(1)))
                    .unwrap();
                let mut answer = [0u8; 7];
                if stream.write_all(b"PING\r\n").is_ok()
                    && stream.read_exact(&mut answer).is_ok()
                    && &answer == b"+PONG\r\n"
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20)); // the server is starting: poll again
        }
        panic!("redis-server did not answer PING on port {}", self.port);
    }
}

/// A free port: bind, read it, release it for redis-server.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn signal(which: &str, pid: &str) {
    let status = Command::new("kill")
        .args([which, pid])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {which} {pid}");
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(self.dir());
        if let Some(scratch) = &self.scratch {
            let _ = std::fs::remove_file(scratch);
            let _ = std::fs::remove_dir_all(scratch);
        }
    }
}
