//! A throwaway PostgreSQL cluster for tests: `initdb` and `pg_ctl` in a temporary directory, on a
//! loopback port, stopped (and its files removed) when the [`Cluster`] is dropped.
//!
//! `initdb` refuses to run as root, so a test running as root runs the server as an unprivileged
//! user (`postgres` when it exists, else `nobody`). Where PostgreSQL is not installed,
//! [`Cluster::start`] says so on stderr and returns `None`, and the test skips, unless
//! `PAYMENTS_REQUIRE_POSTGRES=1` (set by `.ci/run`) makes that a failure.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A running PostgreSQL server of a test's own.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// The unprivileged user that runs the server, when the test runs as root.
    run_as: Option<String>,
}

/// Where PostgreSQL's server programs are: `PG_BIN`, Debian's `/usr/lib/postgresql/N/bin`
/// (the newest), or the `PATH`.
fn find_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    debian.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    if let Some(bin) = debian.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
    })
}

/// How many times [`Cluster::start`] tries a new port before it gives up.
const START_ATTEMPTS: u32 = 4;

/// A loopback port that is free now, chosen below the kernel's ephemeral range where there is
/// room: ports there are never handed out by `connect` or by binding port 0, so the many
/// connections and servers of a test do not take the port before PostgreSQL binds it.
fn free_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(0);
    const FIRST: u16 = 10_000;
    if low > FIRST + 1_000 {
        let span = u64::from(low - FIRST);
        for _ in 0..64 {
            let seed = std::hash::BuildHasher::hash_one(
                &std::collections::hash_map::RandomState::new(),
                std::time::SystemTime::now(),
            );
            let port = FIRST + u16::try_from(seed % span).expect("below the range's start");
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn user_exists(name: &str) -> bool {
    Command::new("id")
        .arg(name)
        .output()
        .is_ok_and(|out| out.status.success())
}

fn check(what: &str, output: std::io::Result<Output>) -> Output {
    let output = output.unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

impl Cluster {
    /// Starts a new cluster, or returns `None` (saying why on stderr) where PostgreSQL is not
    /// installed. Panics when `PAYMENTS_REQUIRE_POSTGRES=1` and it is not, or when it is but
    /// will not start.
    pub fn start() -> Option<Cluster> {
        Cluster::start_with(None, &[])
    }

    /// Starts a new cluster with these server settings besides the usual ones, each
    /// `name=value` as `postgres -c` takes it (`shared_preload_libraries=pg_stat_statements`);
    /// `None` as [`Cluster::start`]. Panics on a setting with a space or a quote in it, or one
    /// the server refuses.
    pub fn start_with_settings(settings: &[&str]) -> Option<Cluster> {
        Cluster::start_with(None, settings)
    }

    /// Starts a new cluster that offers TLS (`ssl=on`) with this certificate (PEM, its chain
    /// after it) and key (PEM), beside plain connections; `None` as [`Cluster::start`].
    pub fn start_tls(certificate_pem: &str, key_pem: &str) -> Option<Cluster> {
        Cluster::start_with(Some((certificate_pem, key_pem)), &[])
    }

    fn start_with(tls: Option<(&str, &str)>, extra: &[&str]) -> Option<Cluster> {
        for setting in extra {
            // `pg_ctl -o` hands the options to a shell: a setting stays one plain word.
            assert!(
                setting.contains('=')
                    && !setting
                        .chars()
                        .any(|c| c.is_whitespace() || "'\"\\$`;&|<>()".contains(c)),
                "a server setting is one `name=value` word without spaces, quotes or shell characters: {setting:?}"
            );
        }
        let Some(bin) = find_bin() else {
            let message = "PostgreSQL is not installed (no initdb in PG_BIN, /usr/lib/postgresql/*/bin or PATH): the PostgreSQL tests were SKIPPED; install it (Debian: apt-get install postgresql-15) or run .ci/run, which does";
            if std::env::var("PAYMENTS_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                panic!("{message}");
            }
            eprintln!("{message}");
            return None;
        };
        let run_as = is_root().then(|| {
            ["postgres", "nobody"]
                .into_iter()
                .find(|user| user_exists(user))
                .expect("running as root, but there is neither a postgres nor a nobody user to run the server as")
                .to_owned()
        });
        let dir = tempfile::Builder::new()
            .prefix("payments-pg-")
            .tempdir()
            .expect("a temporary directory for the cluster");
        if let Some(user) = &run_as {
            check(
                "chown",
                Command::new("chown").arg(user).arg(dir.path()).output(),
            );
        }
        let mut cluster = Cluster {
            bin,
            dir,
            port: 0,
            run_as,
        };
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            ],
        );
        let mut settings = String::new();
        if let Some((certificate, key)) = tls {
            for (name, pem) in [("server.crt", certificate), ("server.key", key)] {
                let path = cluster.dir.path().join(name);
                std::fs::write(&path, pem).expect("the server's TLS files");
                // PostgreSQL reads a key only its own user may read.
                std::fs::set_permissions(
                    &path,
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )
                .expect("the key's mode");
                if let Some(user) = &cluster.run_as {
                    check("chown", Command::new("chown").arg(user).arg(&path).output());
                }
                let setting = if name == "server.crt" {
                    "ssl_cert_file"
                } else {
                    "ssl_key_file"
                };
                settings.push_str(&format!(" -c {setting}={}", path.display()));
            }
            settings.push_str(" -c ssl=on");
        }
        for setting in extra {
            settings.push_str(&format!(" -c {setting}"));
        }
        let log = cluster.dir.path().join("server.log");
        // A port another socket takes between our choice and the server's bind makes the
        // server exit at once: choose again, a few times, and show the server's log if it
        // still will not start.
        for attempt in 1..=START_ATTEMPTS {
            cluster.port = free_port();
            let options = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400{settings}",
                cluster.port,
                cluster.dir.path().display()
            );
            let output = cluster
                .command("pg_ctl")
                .args(["-D", &data, "-o", &options, "-l"])
                .arg(&log)
                .args(["-w", "-t", "60", "start"])
                .output()
                .unwrap_or_else(|e| panic!("cannot run pg_ctl: {e}"));
            if output.status.success() {
                return Some(cluster);
            }
            let server_log = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                attempt < START_ATTEMPTS,
                "pg_ctl failed {START_ATTEMPTS} times, last on port {}: {}{}\nserver log:\n{server_log}",
                cluster.port,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
            );
            eprintln!(
                "PostgreSQL did not start on port {} (attempt {attempt}), trying another: {}",
                cluster.port,
                server_log
                    .lines()
                    .rev()
                    .find(|line| !line.trim().is_empty())
                    .unwrap_or("")
            );
        }
        unreachable!("the last attempt returns or panics")
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// One of the server's programs, to run as the unprivileged user when there is one.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&path);
                command
            }
            None => Command::new(&path),
        };
        command.current_dir(self.dir.path());
        command
    }

    /// Runs one of the server's programs; panics, with its output, when it fails.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        check(program, self.command(program).args(args).output())
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates the database `name` and returns its URL.
    pub fn database(&self, name: &str) -> String {
        let port = self.port.to_string();
        self.run(
            "createdb",
            &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", name],
        );
        self.url(name)
    }

    /// The URL of the database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// The directory of the server's programs (`pg_dump`, `psql`).
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// `pg_dump` of the database `name`, as SQL text.
    pub fn dump(&self, name: &str) -> String {
        let port = self.port.to_string();
        let output = self.run(
            "pg_dump",
            &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", name],
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// A cluster that offers TLS with a certificate for the name `db.test` only, signed by a CA
/// generated here, with the CA's file and that of another CA that signed nothing: for testing
/// what each `sslmode` accepts. The server is always at 127.0.0.1.
#[derive(Debug)]
pub struct TlsCluster {
    cluster: Cluster,
    dir: tempfile::TempDir,
}

/// A certificate authority of a test's own.
fn authority(name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().expect("a CA key");
    rcgen::CertifiedIssuer::self_signed(params, key).expect("a CA certificate")
}

impl TlsCluster {
    /// Starts it with the database `ledger`; `None` as [`Cluster::start`].
    pub fn start() -> Option<TlsCluster> {
        let ca = authority("payments test CA");
        let other = authority("another CA");
        let key = rcgen::KeyPair::generate().expect("a server key");
        let certificate = rcgen::CertificateParams::new(vec!["db.test".to_owned()])
            .expect("server parameters")
            .signed_by(&key, &ca)
            .expect("a server certificate");
        let cluster = Cluster::start_tls(&certificate.pem(), &key.serialize_pem())?;
        cluster.database("ledger");
        let dir = tempfile::tempdir().expect("a directory for the CAs");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("the CA's file");
        std::fs::write(dir.path().join("other.pem"), other.pem()).expect("the other CA's file");
        Some(TlsCluster { cluster, dir })
    }

    /// The cluster itself.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The ledger's URL with `query` after it: `host` is the name connected to (the address is
    /// always 127.0.0.1); `{ca}` and `{other}` in `query` become the CAs' files.
    pub fn url(&self, host: &str, query: &str) -> String {
        let file = |name: &str| self.dir.path().join(name).display().to_string();
        let query = query
            .replace("{ca}", &file("ca.pem"))
            .replace("{other}", &file("other.pem"));
        format!(
            "postgresql://postgres@{host}:{}/ledger?hostaddr=127.0.0.1&{query}",
            self.cluster.port()
        )
    }
}
