//! A business of the fleet's tests and benchmark: one account whose two sources are one
//! sandbox's (its keys and base URLs). The fleet benchmark includes this file too.

use payments_postgres::{NewAccount, SourceOptions};
use payments_sandbox::Sandbox;
use secrecy::SecretString;

/// The account `name` with `sandbox`'s MKP and PayPro sources, with their keys, at its base
/// URLs, each with its other options as given; no webhook secret.
pub(crate) fn sandbox_account(
    name: String,
    sandbox: &Sandbox,
    mkp: SourceOptions,
    paypro: SourceOptions,
) -> NewAccount {
    let config = sandbox.config();
    NewAccount {
        webhook_secrets: Vec::new(),
        name,
        sources: vec![
            (
                "mkp".to_owned(),
                SecretString::from(config.mkp_key.clone()),
                SourceOptions {
                    base_url: Some(sandbox.mkp_base_url()),
                    ..mkp
                },
            ),
            (
                "paypro".to_owned(),
                SecretString::from(config.paypro_key.clone()),
                SourceOptions {
                    base_url: Some(sandbox.paypro_base_url()),
                    ..paypro
                },
            ),
        ],
    }
}
