//! Says, in the build output of `cargo test`, when the PostgreSQL tests will be skipped because
//! PostgreSQL's server programs are not installed (the tests themselves cannot say so visibly:
//! the test harness hides the output of tests that pass).

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=PG_BIN");
    println!("cargo:rerun-if-env-changed=PATH");
    println!("cargo:rerun-if-changed=/usr/lib/postgresql");
    let in_pg_bin =
        std::env::var_os("PG_BIN").is_some_and(|dir| PathBuf::from(dir).join("initdb").exists());
    let in_debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| entry.path().join("bin/initdb").exists());
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("initdb").exists()));
    if !(in_pg_bin || in_debian || on_path) {
        println!(
            "cargo:warning=PostgreSQL is not installed: the PostgreSQL store and fleet tests will be SKIPPED. Install it (Debian: apt-get install postgresql-15) or set PG_BIN to the directory of initdb, and run the tests again; .ci/run installs it."
        );
    }
}
