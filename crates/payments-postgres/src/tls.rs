//! TLS to PostgreSQL as libpq reads it from the URL: `sslmode` (`disable`, `allow`, `prefer`,
//! `require`, `verify-ca`, `verify-full`; `prefer` when absent) and `sslrootcert` (a PEM file of
//! trusted roots, or `system`), with rustls.
//!
//! | `sslmode`     | TLS                    | the server's certificate                     |
//! |---------------|------------------------|----------------------------------------------|
//! | `disable`     | never                  | -                                            |
//! | `allow`, `prefer` | when the server offers it | not checked (encryption only)          |
//! | `require`     | always                 | not checked, unless roots are given (then as `verify-ca`) |
//! | `verify-ca`   | always                 | signed by a trusted root                     |
//! | `verify-full` | always                 | signed by a trusted root, for the URL's host |
//!
//! The trusted roots are `sslrootcert`'s file; without it, libpq's `~/.postgresql/root.crt`
//! when that exists, else (for `verify-full` alone) the system's roots. `sslrootcert=system` is
//! the system's roots and, as in libpq, only with `verify-full`: the system's roots sign
//! certificates for anyone's host, so without the name check they prove nothing, and
//! `verify-ca` without roots of its own is refused.
//!
//! The `sslmode` tokio-postgres read itself is kept when this module's reading missed it (a
//! form it does not know), so a URL's mode is never quietly weakened to `prefer`. Over a Unix
//! socket, where PostgreSQL offers no TLS, `sslmode` is ignored, as libpq does; with `hostaddr`
//! and no `host`, the address is the name TLS is negotiated for, and `verify-full` is refused
//! (it has no name to check).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use payments_sync::StoreError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How long a connection may take to open when the URL sets no `connect_timeout`.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How to connect: the configuration tokio-postgres reads, and the TLS connector for it.
pub(crate) struct Connection {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) tls: MakeRustlsConnect,
    /// The `sslmode` in force, as the URL wrote it (or `prefer`).
    pub(crate) mode: &'static str,
}

/// What is checked of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Nothing: the connection is encrypted, the server not authenticated.
    Nothing,
    /// That a trusted root signed it.
    Chain,
    /// That a trusted root signed it for the host connected to.
    ChainAndName,
}

/// Where the trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Roots {
    File(PathBuf),
    System,
}

/// The TLS part of a URL, taken out of it.
#[derive(Debug, PartialEq, Eq)]
struct TlsParams {
    mode: Option<String>,
    root_cert: Option<String>,
}

fn refused(detail: impl Into<String>) -> StoreError {
    StoreError::backend(
        "the PostgreSQL URL's TLS settings do not read",
        std::io::Error::other(detail.into()),
    )
}

/// Reads `url` (a `postgresql://` URL or libpq's `key=value` form) with its TLS settings.
pub(crate) fn connection(url: &str) -> Result<Connection, StoreError> {
    let (rest, params) = take_tls_params(url)?;
    let mut config: tokio_postgres::Config =
        rest.parse().map_err(|error: tokio_postgres::Error| {
            StoreError::backend(
                "the PostgreSQL URL does not read; write it as postgresql://user:password@host:port/dbname",
                error,
            )
        })?;
    let params = TlsParams {
        mode: params.mode.or_else(|| read_by_tokio_postgres(&config)),
        ..params
    };
    let home_roots = home_root_cert();
    let (mode, ssl, check, roots) = policy(&params, home_roots.as_deref())?;
    config.ssl_mode(ssl);
    name_the_host(&mut config, mode)?;
    if config.get_connect_timeout().is_none() {
        // A database behind a dropped network answers nothing: say so in time rather than
        // wait on TCP for minutes (the URL's connect_timeout, in seconds, wins).
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| StoreError::backend("cannot set up TLS", error))?;
    let client = match check {
        Check::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptionOnly {
                algorithms: provider.signature_verification_algorithms,
            })),
        Check::Chain => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SignedByTrustedRoot {
                roots: Arc::new(root_store(roots.as_ref())?),
                algorithms: provider.signature_verification_algorithms,
            })),
        Check::ChainAndName => builder.with_root_certificates(root_store(roots.as_ref())?),
    }
    .with_no_client_auth();
    Ok(Connection {
        config,
        tls: MakeRustlsConnect::new(client),
        mode,
    })
}

/// The `sslmode` tokio-postgres read from the URL where [`take_tls_params`] found none (a form
/// of the key it did not recognise); `None` for tokio-postgres's default.
fn read_by_tokio_postgres(config: &tokio_postgres::Config) -> Option<String> {
    match config.get_ssl_mode() {
        SslMode::Disable => Some("disable".to_owned()),
        SslMode::Require => Some("require".to_owned()),
        _ => None,
    }
}

/// Sets what TLS is negotiated for where tokio-postgres would have nothing: no TLS over Unix
/// sockets alone (PostgreSQL offers none there; libpq ignores `sslmode` for them; with a
/// `hostaddr` beside, tokio-postgres dials TCP, and TLS stays as asked), and the address
/// as the name when the URL gives `hostaddr` without `host` (tokio-postgres names the TLS
/// session by `host` alone), which `verify-full` cannot accept.
fn name_the_host(config: &mut tokio_postgres::Config, mode: &str) -> Result<(), StoreError> {
    #[cfg(unix)]
    if !config.get_hosts().is_empty()
        && config.get_hostaddrs().is_empty()
        && config
            .get_hosts()
            .iter()
            .all(|host| matches!(host, tokio_postgres::config::Host::Unix(_)))
    {
        config.ssl_mode(SslMode::Disable);
        return Ok(());
    }
    if config.get_hosts().is_empty() && !config.get_hostaddrs().is_empty() && mode != "disable" {
        if mode == "verify-full" {
            return Err(refused(
                "sslmode=verify-full checks the server's certificate against the URL's host, and it gives only hostaddr: add host=NAME (the name the certificate is for) beside hostaddr",
            ));
        }
        for address in config.get_hostaddrs().to_vec() {
            config.host(address.to_string());
        }
    }
    Ok(())
}

/// libpq's `~/.postgresql/root.crt`, when it exists.
fn home_root_cert() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let path = Path::new(&home).join(".postgresql").join("root.crt");
    path.is_file().then_some(path)
}

/// The rules of the table above: the mode in force, what tokio-postgres negotiates, what is
/// checked and against which roots.
fn policy(
    params: &TlsParams,
    home_roots: Option<&Path>,
) -> Result<(&'static str, SslMode, Check, Option<Roots>), StoreError> {
    let mode = match params.mode.as_deref().unwrap_or("prefer") {
        "disable" => "disable",
        "allow" => "allow",
        "prefer" => "prefer",
        "require" => "require",
        "verify-ca" => "verify-ca",
        "verify-full" => "verify-full",
        other => {
            return Err(refused(format!(
                "sslmode {:?} is not one of disable, allow, prefer, require, verify-ca, verify-full",
                other.chars().take(20).collect::<String>()
            )));
        }
    };
    let given = params.root_cert.as_deref().map(|root| match root {
        "system" => Roots::System,
        file => Roots::File(PathBuf::from(file)),
    });
    if given == Some(Roots::System) && mode != "verify-full" {
        return Err(refused(format!(
            "sslrootcert=system trusts any certificate the system's roots signed, so it needs sslmode=verify-full (not {mode})"
        )));
    }
    let roots = given.or_else(|| home_roots.map(|path| Roots::File(path.to_owned())));
    Ok(match mode {
        "disable" => (mode, SslMode::Disable, Check::Nothing, None),
        "allow" | "prefer" => (mode, SslMode::Prefer, Check::Nothing, None),
        "require" => match roots {
            Some(roots) => (mode, SslMode::Require, Check::Chain, Some(roots)),
            None => (mode, SslMode::Require, Check::Nothing, None),
        },
        // The system's roots sign certificates for anyone's host: a chain alone proves nothing
        // without the name, so verify-ca needs roots of its own, as in libpq.
        "verify-ca" => match roots {
            Some(roots) => (mode, SslMode::Require, Check::Chain, Some(roots)),
            None => {
                return Err(refused(
                    "sslmode=verify-ca needs the CA that signed the server's certificate: give it as sslrootcert=FILE (or in ~/.postgresql/root.crt), or use sslmode=verify-full, which also checks the host name against the system's roots",
                ));
            }
        },
        _ => (
            mode,
            SslMode::Require,
            Check::ChainAndName,
            Some(roots.unwrap_or(Roots::System)),
        ),
    })
}

/// The trusted roots, read now, so a missing or empty file is said before any connection.
fn root_store(roots: Option<&Roots>) -> Result<RootCertStore, StoreError> {
    let mut store = RootCertStore::empty();
    match roots.unwrap_or(&Roots::System) {
        Roots::File(path) => {
            let shown = path.display();
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
                .map_err(|error| {
                    refused(format!("cannot read the sslrootcert file {shown}: {error}"))
                })?;
            let (added, _) = store.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(refused(format!(
                    "the sslrootcert file {shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
                )));
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(refused(
                    "this system has no trusted root certificates to check the server with; give them as sslrootcert=FILE (the provider's CA bundle)",
                ));
            }
        }
    }
    Ok(store)
}

/// Takes `sslmode` and `sslrootcert` out of `url` (tokio-postgres knows no `sslrootcert`,
/// and no `verify-*` mode), leaving the rest for tokio-postgres to read.
fn take_tls_params(url: &str) -> Result<(String, TlsParams), StoreError> {
    let mut params = TlsParams {
        mode: None,
        root_cert: None,
    };
    let mut take = |key: &str, value: String| match key {
        "sslmode" => {
            params.mode = Some(value);
            true
        }
        "sslrootcert" => {
            params.root_cert = Some(value);
            true
        }
        _ => false,
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // As libpq reads a URI: credentials end at an `@` met before any `/`, so a `?` in a
        // password is not the query's, and an `@` in the query is no password's.
        let after_scheme = url.find("://").map_or(0, |at| at + 3);
        let after_credentials = match url[after_scheme..].find(['@', '/']) {
            Some(at) if url[after_scheme + at..].starts_with('@') => after_scheme + at + 1,
            _ => after_scheme,
        };
        match url[after_credentials..]
            .find('?')
            .map(|at| url.split_at(after_credentials + at))
            .map(|(base, query)| (base, &query[1..]))
        {
            None => url.to_owned(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&') {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(key, percent_decoded(value)?) {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        // libpq's key=value form: these two keys as `key=value` words, the value optionally
        // in single quotes.
        let mut kept = Vec::new();
        for word in url.split_whitespace() {
            match word.split_once('=') {
                Some((key, value)) if take(key, value.trim_matches('\'').to_owned()) => {}
                _ => kept.push(word),
            }
        }
        kept.join(" ")
    };
    Ok((rest, params))
}

/// A URL query value with its `%XX` escapes decoded.
fn percent_decoded(value: &str) -> Result<String, StoreError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| refused("a %-escape in the URL's query is not two hex digits"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| refused("the URL's query does not decode as UTF-8"))
}

/// `sslmode` `prefer` and `require` without roots: the handshake's signatures are checked, so
/// the session is encrypted to whoever holds the certificate's key, but the certificate is not
/// (libpq's "encryption only").
#[derive(Debug)]
struct EncryptionOnly {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for EncryptionOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `sslmode=verify-ca`: the certificate chains to a trusted root (and is in date); the host
/// name is not compared.
#[derive(Debug)]
struct SignedByTrustedRoot {
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for SignedByTrustedRoot {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let certificate = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &certificate,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(url: &str) -> (String, TlsParams) {
        take_tls_params(url).unwrap()
    }

    #[test]
    fn the_tls_settings_are_taken_out_of_both_url_forms() {
        let (rest, tls) = params(
            "postgresql://u:p@db:5432/ledger?application_name=w&sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20bundle.pem",
        );
        assert_eq!(rest, "postgresql://u:p@db:5432/ledger?application_name=w");
        assert_eq!(tls.mode.as_deref(), Some("verify-full"));
        assert_eq!(tls.root_cert.as_deref(), Some("/etc/ca bundle.pem"));

        let (rest, tls) = params("postgresql://db/ledger?sslmode=require");
        assert_eq!(rest, "postgresql://db/ledger");
        assert_eq!(tls.mode.as_deref(), Some("require"));

        let (rest, tls) = params("host=db dbname=ledger sslmode=verify-ca sslrootcert='/ca.pem'");
        assert_eq!(rest, "host=db dbname=ledger");
        assert_eq!(tls.mode.as_deref(), Some("verify-ca"));
        assert_eq!(tls.root_cert.as_deref(), Some("/ca.pem"));

        assert!(take_tls_params("postgresql://db/x?sslrootcert=%zz").is_err());

        // A `?` in the password is the password's; an `@` in the query is the query's.
        let (rest, tls) = params("postgresql://u:s3cr?t@db/ledger?sslmode=require");
        assert_eq!(rest, "postgresql://u:s3cr?t@db/ledger");
        assert_eq!(tls.mode.as_deref(), Some("require"));
        let (rest, tls) =
            params("postgresql://db/ledger?sslmode=verify-full&sslrootcert=/etc/ssl/ca@corp.pem");
        assert_eq!(rest, "postgresql://db/ledger");
        assert_eq!(tls.mode.as_deref(), Some("verify-full"));
        assert_eq!(tls.root_cert.as_deref(), Some("/etc/ssl/ca@corp.pem"));
    }

    #[test]
    fn a_mode_read_by_tokio_postgres_alone_is_kept_not_weakened_to_prefer() {
        // libpq's key=value form allows spaces around `=`: this module's reading misses it,
        // tokio-postgres's does not.
        let spaced = connection("host=db.example dbname=ledger sslmode = require").unwrap();
        assert_eq!(spaced.mode, "require");
        assert_eq!(spaced.config.get_ssl_mode(), SslMode::Require);
        let spaced = connection("host=db.example dbname=ledger sslmode = disable").unwrap();
        assert_eq!(spaced.mode, "disable");
    }

    #[test]
    fn a_hostaddr_without_host_is_the_tls_name_and_a_unix_socket_negotiates_none() {
        let by_address = connection("hostaddr=10.0.0.5 dbname=ledger sslmode=require").unwrap();
        assert_eq!(
            by_address.config.get_hosts(),
            &[tokio_postgres::config::Host::Tcp("10.0.0.5".to_owned())]
        );
        let error = connection("hostaddr=10.0.0.5 dbname=ledger sslmode=verify-full")
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("add host=NAME"), "{error}");
        let socket = connection("host=/run/postgresql dbname=ledger sslmode=require").unwrap();
        assert_eq!(socket.config.get_ssl_mode(), SslMode::Disable);
        // With hostaddr, tokio-postgres dials TCP whatever host says: TLS stays required.
        let dialled =
            connection("host=/run/postgresql hostaddr=10.0.0.5 dbname=ledger sslmode=require")
                .unwrap();
        assert_eq!(dialled.config.get_ssl_mode(), SslMode::Require);
    }

    fn rule(mode: Option<&str>, root: Option<&str>, home: Option<&str>) -> String {
        let params = TlsParams {
            mode: mode.map(str::to_owned),
            root_cert: root.map(str::to_owned),
        };
        match policy(&params, home.map(Path::new)) {
            Ok((mode, ssl, check, roots)) => format!("{mode} {ssl:?} {check:?} {roots:?}"),
            Err(error) => format!("refused: {error}"),
        }
    }

    #[test]
    fn the_modes_check_what_libpq_checks() {
        assert_eq!(rule(None, None, None), "prefer Prefer Nothing None");
        assert_eq!(
            rule(Some("disable"), None, None),
            "disable Disable Nothing None"
        );
        assert_eq!(rule(Some("allow"), None, None), "allow Prefer Nothing None");
        assert_eq!(
            rule(Some("require"), None, None),
            "require Require Nothing None"
        );
        // libpq: with roots at hand, require checks the chain as verify-ca does.
        assert_eq!(
            rule(Some("require"), Some("/ca.pem"), None),
            "require Require Chain Some(File(\"/ca.pem\"))"
        );
        assert_eq!(
            rule(Some("require"), None, Some("/h/root.crt")),
            "require Require Chain Some(File(\"/h/root.crt\"))"
        );
        // The system's roots sign anyone's certificate: without the name, they prove nothing.
        assert!(rule(Some("verify-ca"), None, None).contains("needs the CA"));
        assert_eq!(
            rule(Some("verify-ca"), None, Some("/h/root.crt")),
            "verify-ca Require Chain Some(File(\"/h/root.crt\"))"
        );
        assert_eq!(
            rule(Some("verify-full"), Some("/ca.pem"), Some("/h/root.crt")),
            "verify-full Require ChainAndName Some(File(\"/ca.pem\"))"
        );
        assert_eq!(
            rule(Some("verify-full"), Some("system"), None),
            "verify-full Require ChainAndName Some(System)"
        );
        assert!(rule(Some("require"), Some("system"), None).contains("needs sslmode=verify-full"));
        let wrong = rule(Some("verify_full"), None, None);
        assert!(wrong.contains("is not one of disable"), "{wrong}");
    }

    #[test]
    fn a_root_file_that_is_missing_or_holds_no_certificate_is_named() {
        let dir = tempfile_dir();
        let missing = dir.join("absent.pem");
        let error = root_store(Some(&Roots::File(missing.clone())))
            .unwrap_err()
            .to_string();
        assert!(error.contains("absent.pem"), "{error}");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let error = root_store(Some(&Roots::File(empty)))
            .unwrap_err()
            .to_string();
        assert!(error.contains("holds no PEM certificate"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("payments-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
