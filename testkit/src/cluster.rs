//! Scratch PostgreSQL clusters for tests that stop, restart or starve a server: each starts its
//! own with `initdb` / `pg_ctl` in a temporary folder on a free port, and removes it when
//! dropped. A primary can have streaming replicas (`pg_basebackup`), each a scratch cluster
//! of its own. The machine's shared server is never touched.

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
        Self::start_with(max_connections, "")
    }

    /// [`ScratchCluster::start`] for a primary that streams to replicas
    /// ([`ScratchCluster::replica`]): WAL for replication, senders for them, and WAL kept so a
    /// replica stopped for a while catches up when it starts again.
    pub fn start_primary(max_connections: u32) -> Option<Self> {
        Self::start_with(
            max_connections,
            " -c wal_level=replica -c max_wal_senders=4 -c wal_keep_size=256MB",
        )
    }

    /// A streaming replica of this cluster on a free port of its own: `pg_basebackup -R -X
    /// stream` (initdb's `pg_hba.conf` with `-A trust` lets local replication in), started
    /// and read-only (hot standby). Removed on drop, like any scratch cluster.
    pub fn replica(&self) -> Self {
        let replica = Self::new_dir();
        run(as_postgres("pg_basebackup")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-R", "-X", "stream"])
            // A fast checkpoint to start from: a spread one paces its writes over minutes.
            .args(["-c", "fast", "-p"])
            .arg(self.port.to_string())
            .arg("-D")
            .arg(replica.data_dir()));
        // The backup carries the primary's settings (a standby needs at least its
        // max_connections); its port and socket folder are its own.
        replica.pg_ctl_start();
        replica
    }

    fn start_with(max_connections: u32, extra_options: &str) -> Option<Self> {
        if Command::new("initdb").arg("--version").output().is_err() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "initdb is not on PATH and CI=true"
            );
            eprintln!("skipping: initdb is not on PATH");
            return None;
        }
        let cluster = Self::new_dir();
        let data = cluster.data_dir();
        run(as_postgres("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data));
        let settings = format!(
            "-c listen_addresses=127.0.0.1 -c max_connections={max_connections} -c fsync=off\
             {extra_options}"
        );
        std::fs::write(data.join("scratch-options"), &settings).ok();
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

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`: no checkpoint,
    /// sessions cut); it recovers when started again.
    pub fn stop_immediate(&self) {
        run(as_postgres("pg_ctl")
            .args(["-D"])
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "-t", "30", "stop"]));
    }

    /// Starts it again after [`ScratchCluster::stop`] or [`ScratchCluster::stop_immediate`]
    /// (a replica resumes streaming from its primary).
    pub fn restart(&self) {
        self.pg_ctl_start();
    }

    /// An empty cluster folder on a free port, owned by `postgres` when running as root
    /// (initdb refuses to run as root: `postgres` runs every tool).
    fn new_dir() -> Self {
        let dir =
            std::env::temp_dir().join(format!("leasewatch-pg-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("create the cluster folder");
        if is_root() {
            run(Command::new("chown").arg("postgres:").arg(&dir));
        }
        Self {
            port: free_port(),
            dir,
        }
    }

    fn pg_ctl_start(&self) {
        let data = self.data_dir();
        let settings =
            std::fs::read_to_string(data.join("scratch-options")).expect("the saved settings");
        let options = format!("-p {} -k {} {settings}", self.port, self.dir.display());
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
