//! The providers' keys and base URLs, as every command that reaches a provider takes them
//! (`sync`, `serve`, `check`): one set of flags and variables, one way to name them in errors.

use payments_sources::{Source, default_base_url};

/// The keys and base URLs of both providers.
#[derive(Debug, clap::Args)]
pub(crate) struct ProviderArgs {
    /// The MKP API key (prefer the variable: flags show in the process list).
    #[arg(long, env = "MKP_API_KEY", hide_env_values = true, value_name = "KEY")]
    mkp_api_key: Option<String>,
    /// The PayPro API key (prefer the variable: flags show in the process list).
    #[arg(
        long,
        env = "PAYPRO_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    paypro_api_key: Option<String>,
    /// The MKP API.
    #[arg(long, env = "MKP_BASE_URL", default_value = default_base_url(Source::Mkp), value_name = "URL")]
    mkp_base_url: String,
    /// The PayPro API.
    #[arg(long, env = "PAYPRO_BASE_URL", default_value = default_base_url(Source::PayPro), value_name = "URL")]
    paypro_base_url: String,
}

/// One provider's key and base URL as the flags give them.
pub(crate) struct Provider<'a> {
    pub(crate) source: Source,
    /// The key, when set and not blank (a blank one is no key).
    pub(crate) key: Option<&'a str>,
    pub(crate) base_url: &'a str,
    /// The key's variable and flag, named when it is missing.
    pub(crate) key_flag: &'static str,
    /// What key it needs, said when it is missing.
    pub(crate) key_is: &'static str,
    /// The base URL's flag and variable, named when it is refused.
    pub(crate) base_url_flag: &'static str,
}

/// A key that is set and not blank (a blank one is no key).
fn present(key: &Option<String>) -> Option<&str> {
    key.as_deref().filter(|k| !k.trim().is_empty())
}

impl ProviderArgs {
    /// Each provider, in the order their sources run and are reported.
    pub(crate) fn providers(&self) -> [Provider<'_>; 2] {
        [
            Provider {
                source: Source::Mkp,
                key: present(&self.mkp_api_key),
                base_url: &self.mkp_base_url,
                key_flag: "MKP_API_KEY (or --mkp-api-key)",
                key_is: "a MijnKlantportaal API key with the paymentlinks.read scope",
                base_url_flag: "--mkp-base-url (or MKP_BASE_URL)",
            },
            Provider {
                source: Source::PayPro,
                key: present(&self.paypro_api_key),
                base_url: &self.paypro_base_url,
                key_flag: "PAYPRO_API_KEY (or --paypro-api-key)",
                key_is: "your PayPro API key",
                base_url_flag: "--paypro-base-url (or PAYPRO_BASE_URL)",
            },
        ]
    }
}
