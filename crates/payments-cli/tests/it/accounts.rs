//! `payments accounts`, one `payments worker --until-idle` round, and the reading commands on
//! one account of the PostgreSQL ledger: what an operator runs, and never a key in the output.

use payments_sandbox::Sandbox;
use payments_testkit::postgres::Cluster;

use crate::{parse_ndjson, payments, run, text, unlimited};

#[test]
fn an_account_added_by_the_cli_is_synced_by_a_worker_and_read_back_without_showing_its_key() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database("cli");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sandbox = runtime
        .block_on(Sandbox::start(unlimited(21, 6, 80)))
        .unwrap();
    let config = sandbox.config();
    let master = text(&run(payments().args(["accounts", "master-key"]), 0).stdout)
        .trim()
        .to_owned();
    let cli = |args: &[&str]| {
        let mut command = payments();
        command
            .args(args)
            .env("PAYMENTS_POSTGRES", &url)
            .env("PAYMENTS_MASTER_KEY", &master)
            .env("MKP_API_KEY", &config.mkp_key)
            .env("PAYPRO_API_KEY", &config.paypro_key);
        command
    };
    let mkp_url = sandbox.mkp_base_url();
    let paypro_url = sandbox.paypro_base_url();
    let mut outputs = Vec::new();
    // The base URLs from the variables `sync` reads (as after sourcing the sandbox's env file).
    outputs.push(run(
        cli(&["accounts", "add", "acme-bv"])
            .env("MKP_BASE_URL", &mkp_url)
            .env("PAYPRO_BASE_URL", &paypro_url),
        0,
    ));
    // Refused: the same name again; a wrong master key; no key at all; a run more often than
    // every 10 s (stored ones are read as 10 s, new ones are told the rule).
    let duplicate = run(&mut cli(&["accounts", "add", "acme-bv"]), 2);
    // The same keys under another name: added, with a word that they are shared.
    let twin = run(&mut cli(&["accounts", "add", "acme-twin"]), 0);
    assert!(
        text(&twin.stderr).contains("also the key of acme-bv/mkp"),
        "{}",
        text(&twin.stderr)
    );
    run(&mut cli(&["accounts", "remove", "acme-twin", "--yes"]), 0);
    let often = run(&mut cli(&["accounts", "add", "often", "--every", "5s"]), 2);
    assert!(
        text(&often.stderr).contains("--every: ") && text(&often.stderr).contains("at least 10s"),
        "{}",
        text(&often.stderr)
    );
    assert!(text(&duplicate.stderr).contains("already an account `acme-bv`"));
    let wrong = run(
        cli(&["accounts", "add", "other"]).env(
            "PAYMENTS_MASTER_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ),
        2,
    );
    assert!(
        text(&wrong.stderr).contains("not the master key"),
        "{}",
        text(&wrong.stderr)
    );
    let keyless = run(
        cli(&["accounts", "add", "other"])
            .env_remove("MKP_API_KEY")
            .env_remove("PAYPRO_API_KEY"),
        2,
    );
    assert!(text(&keyless.stderr).contains("no key is set"));
    outputs.extend([duplicate, wrong, keyless]);

    let list = run(&mut cli(&["accounts", "list", "--json"]), 0);
    let listed: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(listed["accounts"][0]["name"], "acme-bv");
    assert_eq!(
        listed["accounts"][0]["sources"][0]["base_url"],
        mkp_url.as_str()
    );
    outputs.push(list);

    // One round: the worker syncs both sources and exits once nothing is due.
    outputs.push(run(&mut cli(&["worker", "--until-idle"]), 0));
    let exported = run(
        &mut cli(&["export", "--account", "acme-bv", "--format", "ndjson"]),
        0,
    );
    assert_eq!(
        parse_ndjson(&exported.stdout),
        payments_testkit::data_set(&sandbox)
    );
    let first = parse_ndjson(&exported.stdout).remove(0);
    outputs.push(exported);
    let shown = run(
        &mut cli(&["show", &first.id, "--account", "acme-bv", "--json"]),
        0,
    );
    let shown_json: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown_json["payment"]["id"], first.id.as_str());
    outputs.push(shown);

    let status = run(&mut cli(&["status", "--account", "acme-bv", "--json"]), 0);
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    for source in report["sources"].as_array().unwrap() {
        assert_eq!(source["last_run"]["outcome"], "ok", "{source}");
        assert!(source["schedule"]["next_run_at"].is_string(), "{source}");
        assert!(source["schedule"]["leased_by"].is_null(), "{source}");
    }
    outputs.push(status);
    let fleet = run(&mut cli(&["status"]), 0);
    let fleet_text = text(&fleet.stdout);
    assert!(
        fleet_text.contains("acme-bv mkp: next run due") && fleet_text.contains("last run ok"),
        "{fleet_text}"
    );
    outputs.push(fleet);
    let missing = run(&mut cli(&["export", "--account", "nobody"]), 2);
    assert!(text(&missing.stderr).contains("no account `nobody`"));
    let no_account = run(&mut cli(&["export"]), 2);
    assert!(text(&no_account.stderr).contains("--postgres needs --account"));
    outputs.extend([missing, no_account]);

    // A master-key rotation: the new key with the previous beside it, then the new key alone.
    let rotated_to = text(&run(payments().args(["accounts", "master-key"]), 0).stdout)
        .trim()
        .to_owned();
    let unset = run(
        cli(&["accounts", "rotate-master-key"]).env("PAYMENTS_MASTER_KEY", &rotated_to),
        2,
    );
    assert!(text(&unset.stderr).contains("PAYMENTS_MASTER_KEY_PREVIOUS"));
    let rotated = run(
        cli(&["accounts", "rotate-master-key"])
            .env("PAYMENTS_MASTER_KEY", &rotated_to)
            .env("PAYMENTS_MASTER_KEY_PREVIOUS", &master),
        0,
    );
    assert!(
        text(&rotated.stdout).contains("sealed 2 key(s)"),
        "{}",
        text(&rotated.stdout)
    );
    run(
        cli(&["accounts", "rotate-master-key"])
            .env("PAYMENTS_MASTER_KEY", &rotated_to)
            .env("PAYMENTS_MASTER_KEY_PREVIOUS", &master),
        0,
    );
    let old_key = run(&mut cli(&["worker", "--until-idle"]), 2);
    assert!(
        text(&old_key.stderr).contains("not the master key"),
        "{}",
        text(&old_key.stderr)
    );
    run(
        cli(&["worker", "--until-idle"]).env("PAYMENTS_MASTER_KEY", &rotated_to),
        0,
    );
    outputs.extend([unset, rotated, old_key]);

    assert!(
        run(&mut cli(&["accounts", "disable", "acme-bv"]), 0)
            .status
            .success()
    );
    let listed = text(&run(&mut cli(&["accounts", "list"]), 0).stdout);
    assert!(listed.contains("acme-bv (disabled)"), "{listed}");
    // A whole ledger is not deleted on a word: with no terminal to ask on, --yes is needed.
    let unasked = run(&mut cli(&["accounts", "remove", "acme-bv"]), 2);
    assert!(
        text(&unasked.stderr).contains("--yes"),
        "{}",
        text(&unasked.stderr)
    );
    let still = text(&run(&mut cli(&["accounts", "list"]), 0).stdout);
    assert!(still.contains("acme-bv"), "{still}");
    assert!(
        run(&mut cli(&["accounts", "remove", "acme-bv", "--yes"]), 0)
            .status
            .success()
    );
    assert!(
        run(&mut cli(&["accounts", "remove", "acme-bv", "--yes"]), 2)
            .status
            .code()
            == Some(2)
    );

    for output in &outputs {
        for secret in [&config.mkp_key, &config.paypro_key, &master] {
            assert!(
                !text(&output.stdout).contains(secret.as_str())
                    && !text(&output.stderr).contains(secret.as_str()),
                "a key in the output: {}{}",
                text(&output.stdout),
                text(&output.stderr)
            );
        }
    }
}

#[test]
fn a_fleet_runs_over_verified_tls_and_an_untrusted_server_is_refused_by_name() {
    let Some(tls) = payments_testkit::postgres::TlsCluster::start() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sandbox = runtime
        .block_on(Sandbox::start(unlimited(22, 4, 30)))
        .unwrap();
    let config = sandbox.config();
    let master = text(&run(payments().args(["accounts", "master-key"]), 0).stdout)
        .trim()
        .to_owned();
    let verified = tls.url("db.test", "sslmode=verify-full&sslrootcert={ca}");
    let cli = |url: &str, args: &[&str]| {
        let mut command = payments();
        command
            .args(args)
            .env("PAYMENTS_POSTGRES", url)
            .env("PAYMENTS_MASTER_KEY", &master)
            .env("MKP_API_KEY", &config.mkp_key)
            .env("PAYPRO_API_KEY", &config.paypro_key)
            .env("MKP_BASE_URL", sandbox.mkp_base_url())
            .env("PAYPRO_BASE_URL", sandbox.paypro_base_url());
        command
    };
    run(&mut cli(&verified, &["accounts", "add", "acme"]), 0);
    run(&mut cli(&verified, &["worker", "--until-idle"]), 0);
    let listed = run(&mut cli(&verified, &["accounts", "list", "--json"]), 0);
    assert!(
        text(&listed.stdout).contains("\"acme\""),
        "{}",
        text(&listed.stdout)
    );

    let untrusted = tls.url("db.test", "sslmode=verify-full&sslrootcert={other}");
    let refused = run(&mut cli(&untrusted, &["worker", "--until-idle"]), 2);
    let said = text(&refused.stderr);
    assert!(said.contains("certificate is not trusted"), "{said}");
    assert!(!said.contains(&master), "{said}");
}
