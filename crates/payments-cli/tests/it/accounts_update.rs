//! `payments accounts update`: an account added with a wrong base URL is mended and synced, a
//! source it lacks is added, its key is replaced from the environment (and only from there),
//! and what cannot be done is said, exit 2, never with a key in the output.

use std::process::{Command, Output};

use payments_sandbox::Sandbox;
use payments_testkit::postgres::Cluster;

use crate::{parse_ndjson, payments, run, text, unlimited};

/// Where nothing listens: a source pointed here fails its runs.
const NOWHERE: &str = "http://127.0.0.1:9/v1";

#[test]
fn an_account_is_mended_extended_and_rekeyed_by_update_and_then_synced() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database("cli_update");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sandbox = runtime
        .block_on(Sandbox::start(unlimited(23, 5, 40)))
        .unwrap();
    let config = sandbox.config();
    let master = text(&run(payments().args(["accounts", "master-key"]), 0).stdout)
        .trim()
        .to_owned();
    // No key in the environment unless a step sets one.
    let cli = |args: &[&str]| {
        let mut command = payments();
        command
            .args(args)
            .env("PAYMENTS_POSTGRES", &url)
            .env("PAYMENTS_MASTER_KEY", &master);
        command
    };
    let mut outputs: Vec<Output> = Vec::new();
    let mut step = |command: &mut Command, expected: i32| -> (String, String) {
        let output = run(command, expected);
        let said = (text(&output.stdout), text(&output.stderr));
        outputs.push(output);
        said
    };
    let mkp_url = sandbox.mkp_base_url();
    let paypro_url = sandbox.paypro_base_url();

    // Added with MKP alone, at a wrong base URL: the worker's run fails.
    step(
        cli(&["accounts", "add", "acme-bv"])
            .env("MKP_API_KEY", &config.mkp_key)
            .env("MKP_BASE_URL", NOWHERE),
        0,
    );
    step(&mut cli(&["worker", "--until-idle"]), 1);

    // The base URL mended (from the flag alone: MKP_BASE_URL, still wrong, is not read), and
    // PayPro added with its key: the next round syncs both, the failed source at once.
    let (said, _) = step(
        cli(&["accounts", "update", "acme-bv", "--mkp-base-url", &mkp_url])
            .env("MKP_BASE_URL", NOWHERE),
        0,
    );
    assert_eq!(
        said.trim(),
        format!("updated acme-bv/mkp: base URL {NOWHERE} → {mkp_url}")
    );
    let (said, _) = step(
        cli(&[
            "accounts",
            "update",
            "acme-bv",
            "--source",
            "paypro",
            "--key",
            "--paypro-base-url",
            &paypro_url,
        ])
        .env("PAYPRO_API_KEY", &config.paypro_key),
        0,
    );
    assert!(
        said.starts_with("added acme-bv/paypro: key sealed"),
        "{said}"
    );
    step(&mut cli(&["worker", "--until-idle"]), 0);
    let exported = run(
        &mut cli(&["export", "--account", "acme-bv", "--format", "ndjson"]),
        0,
    );
    assert_eq!(
        parse_ndjson(&exported.stdout),
        payments_testkit::data_set(&sandbox)
    );

    // A key replaced from MKP_API_KEY: a wrong one fails the next run (due at once), the
    // right one syncs again.
    let (said, _) = step(
        cli(&["accounts", "update", "acme-bv", "--source", "mkp", "--key"])
            .env("MKP_API_KEY", "mkp_Wrong_Key_4Tq"),
        0,
    );
    assert_eq!(said.trim(), "updated acme-bv/mkp: key replaced");
    let (_, complained) = step(&mut cli(&["worker", "--until-idle"]), 1);
    assert!(complained.contains("acme-bv/mkp"), "{complained}");
    step(
        cli(&["accounts", "update", "acme-bv", "--source", "mkp", "--key"])
            .env("MKP_API_KEY", &config.mkp_key),
        0,
    );
    step(&mut cli(&["worker", "--until-idle"]), 0);

    // A schedule for each source; a webhook secret sealed from its variable, then removed.
    let (said, _) = step(
        &mut cli(&["accounts", "update", "acme-bv", "--every", "1m"]),
        0,
    );
    assert_eq!(
        said.lines().collect::<Vec<_>>(),
        [
            "updated acme-bv/mkp: every 5m → 1m",
            "updated acme-bv/paypro: every 5m → 1m"
        ],
        "{said}"
    );
    let (said, _) = step(
        cli(&[
            "accounts",
            "update",
            "acme-bv",
            "--source",
            "paypro",
            "--webhook-secret",
        ])
        .env("PAYPRO_WEBHOOK_SECRET", "whsec_Recognisable"),
        0,
    );
    assert_eq!(said.trim(), "updated acme-bv/paypro: webhook secret sealed");
    let (said, _) = step(
        &mut cli(&[
            "accounts",
            "update",
            "acme-bv",
            "--source",
            "paypro",
            "--no-webhook-secret",
        ]),
        0,
    );
    assert_eq!(
        said.trim(),
        "updated acme-bv/paypro: webhook secret removed"
    );
    let listed = run(&mut cli(&["accounts", "list", "--json"]), 0);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let sources = &listed["accounts"][0]["sources"];
    assert_eq!(sources[0]["source"], "mkp");
    assert_eq!(sources[0]["base_url"], mkp_url.as_str());
    assert_eq!(sources[0]["every_secs"], 60);
    assert_eq!(sources[1]["source"], "paypro");
    assert_eq!(sources[1]["base_url"], paypro_url.as_str());

    // A key that another account has too: replaced, with a word that it is shared.
    step(
        cli(&["accounts", "add", "other"])
            .env("MKP_API_KEY", "mkp_Shared_Key_8Wd")
            .env("MKP_BASE_URL", NOWHERE),
        0,
    );
    let (said, warned) = step(
        cli(&["accounts", "update", "acme-bv", "--source", "mkp", "--key"])
            .env("MKP_API_KEY", "mkp_Shared_Key_8Wd"),
        0,
    );
    assert_eq!(said.trim(), "updated acme-bv/mkp: key replaced");
    assert!(warned.contains("also the key of other/mkp"), "{warned}");

    // Refused, exit 2, changing nothing: nothing to change (naming the flags), a key asked for
    // but not set, a key on the command line, a flag of a source that --source excludes, a
    // source the account lacks, an unknown account, a name no account can have.
    let refusals: [(&[&str], &[&str]); 7] = [
        (
            &["accounts", "update", "acme-bv"],
            &["nothing to change", "--mkp-base-url", "--every", "--key"],
        ),
        (
            &["accounts", "update", "acme-bv", "--source", "mkp", "--key"],
            &["MKP_API_KEY, which is not set"],
        ),
        (
            &["accounts", "update", "acme-bv", "--key", "mkp_On_The_Line"],
            &["unexpected argument"],
        ),
        (
            &[
                "accounts",
                "update",
                "acme-bv",
                "--source",
                "paypro",
                "--mkp-rate-limit",
                "5",
            ],
            &["--mkp-rate-limit is not an option of paypro"],
        ),
        (
            &[
                "accounts",
                "update",
                "other",
                "--paypro-base-url",
                &paypro_url,
            ],
            &["--paypro-base-url", "lacks", "--source paypro --key"],
        ),
        (
            &["accounts", "update", "nobody", "--every", "1m"],
            &["no account `nobody`", "accounts list"],
        ),
        (
            &["accounts", "update", "Acme\u{1b}[2J", "--every", "1m"],
            &["no account `Acme\\x1b[2J`"],
        ),
    ];
    for (args, words) in refusals {
        let (_, said) = step(&mut cli(args), 2);
        for word in words {
            assert!(said.contains(word), "{args:?}: {said}");
        }
    }
    let often = step(
        &mut cli(&["accounts", "update", "acme-bv", "--every", "5s"]),
        2,
    )
    .1;
    assert!(
        often.contains("--every: ") && often.contains("at least 10s"),
        "{often}"
    );
    let listed_after = run(&mut cli(&["accounts", "list", "--json"]), 0);
    let after: serde_json::Value = serde_json::from_slice(&listed_after.stdout).unwrap();
    assert_eq!(
        after["accounts"][0], listed["accounts"][0],
        "nothing changed"
    );

    for output in &outputs {
        let said = format!("{}{}", text(&output.stdout), text(&output.stderr));
        for secret in [
            config.mkp_key.as_str(),
            config.paypro_key.as_str(),
            "mkp_Wrong_Key_4Tq",
            "mkp_Shared_Key_8Wd",
            "whsec_Recognisable",
            &master,
        ] {
            assert!(!said.contains(secret), "`{secret}` in the output: {said}");
        }
    }
}
