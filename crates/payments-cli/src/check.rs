//! `payments check`: one cheap request per configured source, proving that its key works and
//! has the scopes `payments sync` needs, before any sync.

use chrono::{DateTime, SecondsFormat, Utc};
use payments_model::RateLimitHeaders;
use payments_sources::{PaymentSource, Source, SourceSpec, display_name, documented_rate_limit};
use secrecy::SecretString;

use crate::export::parse_source;
use crate::outcome::{CliError, Exit, print_report, printable};
use crate::providers::ProviderArgs;

/// Checks each configured source's API key with one request, without syncing.
///
/// A source is configured by its key, as for `payments sync`: MKP_API_KEY (a MijnKlantportaal
/// key with the `paymentlinks.read` scope), PAYPRO_API_KEY; MKP_BASE_URL and PAYPRO_BASE_URL
/// point at other addresses. For each one it makes one request, the first that `payments sync`
/// makes (the first page of the listing it reads), and prints the base URL and the rate limit
/// the provider reports in that answer's headers. A source without a key is said to be
/// skipped. It needs no ledger, and it never prints a key.
///
/// Exit codes: 0 every configured source accepted its key; 1 a source could not be checked
/// (no answer, a provider error: try again later); 2 a key was refused (401) or lacks a scope
/// (403), no source is configured, or a flag is wrong. Each failure names the source, what was
/// wrong and what to do. With -q it prints only the errors.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct CheckArgs {
    /// Only these sources (mkp, paypro; default: every source that has a key).
    #[arg(long = "source", value_name = "SOURCE", value_parser = parse_source)]
    sources: Vec<Source>,
    #[command(flatten)]
    providers: ProviderArgs,
}

/// Printed after the options as written, line for line; each line fits in 80 columns.
const EXAMPLES: &str = r#"Examples:
  MKP_API_KEY=... PAYPRO_API_KEY=... payments check
  payments check --source paypro
  set -a; . ~/payments.env; set +a; payments check && payments sync"#;

/// What the check of one source found.
enum Checked {
    /// The key was accepted; the answer's rate-limit headers.
    Passed(RateLimitHeaders),
    /// Not checked: no key, or not asked for with `--source`.
    Skipped(String),
    /// The check failed, with the exit code it means and what to say.
    Failed(Exit, String),
}

pub(crate) async fn run(args: CheckArgs) -> Result<Exit, CliError> {
    let mut report = String::new();
    let mut exit = Exit::Done;
    let mut checked = 0;
    for flags in args.providers.providers() {
        let name = flags.source.as_str();
        let spec = SourceSpec::new(flags.source).with_base_url(flags.base_url);
        let asked = args.sources.is_empty() || args.sources.contains(&flags.source);
        let outcome = match flags.key {
            _ if !asked => Checked::Skipped("not asked for with --source".to_owned()),
            None if args.sources.is_empty() => {
                Checked::Skipped(format!("no key: {} is not set", flags.key_flag))
            }
            None => Checked::Failed(
                Exit::Config,
                format!(
                    "--source {name} needs a key: set {} to the key to check",
                    flags.key_flag
                ),
            ),
            Some(key) => {
                checked += 1;
                check(&spec, key, flags.base_url_flag).await
            }
        };
        let base_url = printable(spec.base_url());
        match outcome {
            Checked::Passed(headers) => report.push_str(&format!(
                "{name}: ok, the key was accepted at {base_url}; {}\n",
                rate_limit(flags.source, &headers)
            )),
            Checked::Skipped(why) => report.push_str(&format!("{name}: skipped ({why})\n")),
            Checked::Failed(code, message) => {
                report.push_str(&format!("{name}: failed at {base_url}\n"));
                eprintln!("error: {name}: {}", printable(&message));
                exit = worse(exit, code);
            }
        }
    }
    // -q: errors only (each failure is said on stderr above).
    if !crate::output::quiet() {
        print_report(&report, "the check")?;
    }
    if checked == 0 && exit == Exit::Done {
        return Err(CliError::config(
            "no source is configured: set MKP_API_KEY and/or PAYPRO_API_KEY to the keys to check",
        ));
    }
    Ok(exit)
}

/// The worse of two exits: a key to fix (2) before a check to try again (1).
fn worse(a: Exit, b: Exit) -> Exit {
    match (a, b) {
        (Exit::Config, _) | (_, Exit::Config) => Exit::Config,
        (Exit::Failed, _) | (_, Exit::Failed) => Exit::Failed,
        _ => a,
    }
}

/// Builds the source of `spec` with `key` and makes the one request of the check: the first
/// page of the listing `payments sync` reads first, which needs the scopes a sync needs.
async fn check(spec: &SourceSpec, key: &str, base_url_flag: &str) -> Checked {
    let source: std::sync::Arc<dyn PaymentSource> = match spec
        .build(&SecretString::from(key.to_owned()))
    {
        Ok(source) => source,
        Err(error) => return Checked::Failed(Exit::Config, format!("{base_url_flag}: {error}")),
    };
    match source.page(None).await {
        Ok(page) => Checked::Passed(page.rate_limit),
        Err(error) if error.is_auth() => Checked::Failed(Exit::Config, error.to_string()),
        Err(error) => Checked::Failed(
            Exit::Failed,
            format!(
                "{error}; the key could not be checked: try again later, or check {base_url_flag}"
            ),
        ),
    }
}

/// What the answer's headers said about the rate limit, beside what the provider documents.
fn rate_limit(provider: Source, headers: &RateLimitHeaders) -> String {
    let name = display_name(provider);
    let documented = match documented_rate_limit(provider) {
        Some(rate) => format!(
            "{name} documents {} requests per {} seconds",
            rate.limit,
            rate.window.as_secs()
        ),
        None => format!("{name} documents none"),
    };
    let Some(limit) = headers.limit else {
        return match headers.remaining {
            Some(remaining) => {
                format!("rate limit: {remaining} requests left in this window ({documented})")
            }
            None => format!("rate limit: none reported ({documented})"),
        };
    };
    let mut line = format!("rate limit: {limit} requests per window");
    if let Some(remaining) = headers.remaining {
        line.push_str(&format!(", {remaining} left"));
    }
    if let Some(at) = headers
        .reset
        .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
    {
        line.push_str(&format!(
            ", resets at {}",
            at.to_rfc3339_opts(SecondsFormat::Secs, true)
        ));
    }
    line.push_str(&format!(" ({documented})"));
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limit_is_said_as_reported_beside_what_is_documented() {
        let reported = RateLimitHeaders {
            limit: Some(60),
            remaining: Some(59),
            reset: Some(1_700_000_000),
        };
        assert_eq!(
            rate_limit(Source::Mkp, &reported),
            "rate limit: 60 requests per window, 59 left, resets at 2023-11-14T22:13:20Z (MKP documents 60 requests per 60 seconds)"
        );
        assert_eq!(
            rate_limit(Source::PayPro, &RateLimitHeaders::default()),
            "rate limit: none reported (PayPro documents none)"
        );
        let remaining = RateLimitHeaders {
            remaining: Some(3),
            ..RateLimitHeaders::default()
        };
        assert_eq!(
            rate_limit(Source::Mkp, &remaining),
            "rate limit: 3 requests left in this window (MKP documents 60 requests per 60 seconds)"
        );
    }

    #[test]
    fn a_key_to_fix_is_worse_than_a_check_to_try_again() {
        assert_eq!(worse(Exit::Done, Exit::Failed), Exit::Failed);
        assert_eq!(worse(Exit::Failed, Exit::Config), Exit::Config);
        assert_eq!(worse(Exit::Config, Exit::Failed), Exit::Config);
        assert_eq!(worse(Exit::Done, Exit::Done), Exit::Done);
    }
}
