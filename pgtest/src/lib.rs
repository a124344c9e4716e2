//! A throwaway PostgreSQL cluster for leadrouter's tests and benches: `initdb` and `pg_ctl` into a temporary directory
//! on a free loopback port, run as the `postgres` user when the tests run as root (the server
//! refuses root), stopped and removed when dropped. The binaries are found by
//! `LEADROUTER_PG_BIN`, `pg_config --bindir`, or Debian's `/usr/lib/postgresql/<v>/bin`.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub struct PgCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
    as_postgres: bool,
    databases: AtomicU32,
}

fn bin_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("LEADROUTER_PG_BIN") {
        return PathBuf::from(p);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if p.join("initdb").exists() {
            return p;
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().expect(
        "PostgreSQL's server binaries (initdb, pg_ctl) are not installed: \
         `apt-get install -y postgresql` (as .ci/run does) or set LEADROUTER_PG_BIN",
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PgCluster {
    /// A new cluster, started. `fsync` off makes tests faster; a process crash
    /// (`pg_ctl stop -m immediate`) loses nothing either way.
    pub fn start() -> Self {
        Self::start_with(&["-c", "fsync=off"])
    }

    /// A new cluster that offers TLS with this certificate chain and key (PEM), started.
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> Self {
        Self::start_files(
            &[
                ("ssl_cert_file", "server.crt", cert_pem),
                ("ssl_key_file", "server.key", key_pem),
            ],
            &["-c", "fsync=off", "-c", "ssl=on"],
        )
    }

    /// A new cluster with server settings (`-c name=value` pairs), started.
    pub fn start_with(settings: &[&str]) -> Self {
        Self::start_files(&[], settings)
    }

    /// `files` (`(setting, file name, contents)`) written into the cluster's directory,
    /// readable by the server alone, each setting naming its file's path there.
    fn start_files(files: &[(&str, &str, &str)], settings: &[&str]) -> Self {
        let bin = bin_dir();
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("leadrouter-pg")
            .tempdir()
            .unwrap();
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown of the cluster directory to postgres failed");
        }
        let c = Self {
            bin,
            dir,
            port: 0,
            as_postgres,
            databases: AtomicU32::new(0),
        };
        let data = c.data_dir();
        c.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
            ],
        );
        let mut c = c;
        c.port = free_port();
        let mut opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300",
            c.port,
            c.dir.path().display()
        );
        for s in settings {
            opts.push(' ');
            opts.push_str(s);
        }
        for (setting, name, text) in files {
            let path = c.dir.path().join(name);
            opts.push_str(&format!(" -c {setting}={}", path.display()));
            std::fs::write(&path, text).unwrap();
            let ok = Command::new("chmod")
                .arg("600")
                .arg(&path)
                .status()
                .unwrap()
                .success();
            assert!(ok, "chmod 600 {}", path.display());
            if as_postgres {
                let ok = Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(&path)
                    .status()
                    .unwrap()
                    .success();
                assert!(ok, "chown of {}", path.display());
            }
        }
        std::fs::write(c.dir.path().join("options"), &opts).unwrap();
        c.pg_ctl_start();
        c
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `tool` from the server's binaries, as the `postgres` user when the tests run as root.
    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pg_ctl_start(&self) {
        let opts = std::fs::read_to_string(self.dir.path().join("options")).unwrap();
        let data = self.data_dir();
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`).
    pub fn stop_immediate(&self) {
        let args = self.stop_args();
        self.run("pg_ctl", &args.each_ref().map(String::as_str));
    }

    fn stop_args(&self) -> [String; 6] {
        [
            "-D",
            self.data_dir().to_str().unwrap(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ]
        .map(str::to_string)
    }

    /// Starts it again after [`PgCluster::stop_immediate`] (on the same port).
    pub fn restart(&self) {
        self.pg_ctl_start();
    }

    /// The URL of the cluster's `postgres` database.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A new, empty database; its URL.
    pub fn database(&self) -> String {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{n}");
        self.psql(&format!("CREATE DATABASE {name}"));
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs SQL with `psql` on the `postgres` database; its output.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_on("postgres", sql)
    }

    /// Runs SQL with `psql` on database `db`; its output (tuples only, unaligned).
    pub fn psql_on(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(self.stop_args())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
