//! Scratch PostgreSQL clusters for tests that stop, restart or starve a server: each starts its
//! own with `initdb` / `pg_ctl` in a temporary folder on a free port, and removes it when
//! dropped. The machine's shared server is never touched.

use std::{net::TcpListener, path::PathBuf, process::Command};

/// A private PostgreSQL server, stopped and deleted on drop.
pub struct ScratchCluster {
    dir: PathBuf,
    port: u16,
}

impl ScratchCluster {
    /// Creates and starts a cluster with `max_connections`, reachable over 127.0.0.1 with
    /// user `postgres` (trust). `None` (skip) when `initdb` is missing and `CI` is not `true`.
    pub fn start(max_connections: u32) -> Option<Self> {
        if Command::new("initdb").arg("--version").output().is_err() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "initdb is not on PATH and CI=true"
            );
            eprintln!("skipping: initdb is not on PATH");
            return None;
        }
        let dir =
            std::env::temp_dir().join(format!("leasewatch-pg-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("create the cluster folder");
        let cluster = Self {
            port: free_port(),
            dir,
        };
        if is_root() {
            // initdb refuses to run as root: the folder belongs to `postgres`, who runs both.
            run(Command::new("chown").arg("postgres:").arg(&cluster.dir));
        }
        let data = cluster.data_dir();
        run(as_postgres("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data));
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections={max_connections} \
             -c fsync=off",
            cluster.port,
            cluster.dir.display()
        );
        std::fs::write(data.join("scratch-options"), &options).ok();
        cluster.pg_ctl_start();
        Some(cluster)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for `user` on database `db`.
    pub fn url(&self, user: &str, db: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{db}", self.port)
    }

    /// The server's log file (what `pg_ctl -l` writes): refused connections and other server
    /// errors, as the server saw them.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("log")
    }

    /// Stops the server (fast: sessions are cut).
    pub fn stop(&self) {
        run(as_postgres("pg_ctl")
            .args(["-D"])
            .arg(self.data_dir())
            .args(["-m", "fast", "-w", "-t", "30", "stop"]));
    }

    /// Starts it again after [`ScratchCluster::stop`].
    pub fn restart(&self) {
        self.pg_ctl_start();
    }

    fn pg_ctl_start(&self) {
        let data = self.data_dir();
        let options =
            std::fs::read_to_string(data.join("scratch-options")).expect("the saved options");
        run(as_postgres("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-o")
            .arg(options)
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "30", "start"]));
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }
}

impl Drop for ScratchCluster {
    fn drop(&mut self) {
        let _ = as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "-t", "30", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

fn as_postgres(program: &str) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", program]);
        command
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command) {
    let output = command.output().expect("run a PostgreSQL tool");
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port on 127.0.0.1")
}
