//! A real `redis-server` on a free loopback port for one test: started with no persistence,
//! ready once it answers PING, paused and resumed with SIGSTOP/SIGCONT, killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> Self {
        for _ in 0..5 {
            if let Some(server) = Self::try_start() {
                return server;
            }
        }
        panic!(
            "redis-server did not start (is it installed? Debian: apt-get install redis-server)"
        );
    }

    fn try_start() -> Option<Self> {
        // A port the OS just handed out and released: another process could take it first,
        // in which case redis-server exits and the next try picks another.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let (child, dir) = Self::spawn(port)?;
        let mut server = Self {
            child,
            port,
            _dir: dir,
        };
        server.until_ready().then_some(server)
    }

    fn spawn(port: u16) -> Option<(Child, tempfile::TempDir)> {
        let dir = tempfile::tempdir().ok()?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        Some((child, dir))
    }

    /// Whether it answers PING within 10 s (false: it exited, or never answered).
    fn until_ready(&mut self) -> bool {
        let give_up = Instant::now() + Duration::from_secs(10);
        while Instant::now() < give_up {
            if self.child.try_wait().ok().flatten().is_some() {
                return false;
            }
            if self.ping() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// SIGKILL (nothing is saved: it keeps no persistence anyway).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A new, empty redis-server on the same port (after [`Self::kill`]).
    pub fn restart_empty(&mut self) {
        let (child, dir) = Self::spawn(self.port).expect("a temp dir");
        self.child = child;
        self._dir = dir;
        assert!(
            self.until_ready(),
            "redis-server restarts on port {}",
            self.port
        );
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn ping(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(200)) else {
            return false;
        };
        redis::cmd("PING").query::<String>(&mut conn).is_ok()
    }

    /// A plain connection for inspecting what the proxy wrote.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// Every key and its value (all the proxy writes are strings).
    pub fn dump(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut conn = self.connection();
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
        keys.into_iter()
            .map(|k| {
                let v: Vec<u8> = redis::cmd("GET")
                    .arg(&k)
                    .query(&mut conn)
                    .unwrap_or_default();
                (k, v)
            })
            .collect()
    }

    /// SIGSTOP: Redis stops answering, its connections stay open.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        let ok = Command::new("kill")
            .args([which, &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {which} redis-server");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
