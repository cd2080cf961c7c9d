//! `cargo xtask fixtures`: provider pages recorded from an API (the sandbox, or a live one) and
//! scrubbed of personal data deterministically.
//!
//! - `cargo xtask fixtures` regenerates `fixtures/*/generated/` from an in-process sandbox with a
//!   fixed seed and date, so the same code always writes the same bytes.
//! - `cargo xtask fixtures --check` regenerates in memory and fails when a file on disk differs,
//!   is missing or is left over (a `#[test]` runs it).
//! - `cargo xtask fixtures record --provider mkp|paypro [--base-url URL] [--pages N]` pulls pages
//!   from a live API (key from `MKP_API_KEY` / `PAYPRO_API_KEY`) or any sandbox into
//!   `fixtures/<provider>/recorded/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use payments_sandbox::{Sandbox, SandboxConfig};
use serde_json::Value;

/// A provider's recording rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Provider {
    Mkp,
    PayPro,
}

impl Provider {
    fn parse(word: &str) -> Result<Provider> {
        match word {
            "mkp" => Ok(Provider::Mkp),
            "paypro" => Ok(Provider::PayPro),
            other => bail!("`{other}` is not a provider; use --provider mkp or --provider paypro"),
        }
    }

    fn dir(self) -> &'static str {
        match self {
            Provider::Mkp => "mkp",
            Provider::PayPro => "paypro",
        }
    }

    /// Where recorded pages say they came from: the real API, whatever was recorded.
    fn public_base(self) -> &'static str {
        match self {
            Provider::Mkp => "https://api.mijnklantportaal.nl/v1",
            Provider::PayPro => "https://api.paypro.nl",
        }
    }

    fn key_variable(self) -> &'static str {
        match self {
            Provider::Mkp => "MKP_API_KEY",
            Provider::PayPro => "PAYPRO_API_KEY",
        }
    }
}

/// The files of one recording: name → pretty JSON.
type Files = BTreeMap<String, String>;

/// The data set of the generated fixtures: fixed, so regeneration is deterministic.
fn generator_config() -> SandboxConfig {
    SandboxConfig {
        seed: 2026,
        mkp_links: 4,
        paypro_payments: 18,
        mkp_per_page: 3,
        mkp_rate_limit: None,
        ..SandboxConfig::default()
    }
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .join("fixtures")
}

/// `cargo xtask fixtures [--check | record …]`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        None => write_generated(),
        Some("--check") => check(),
        Some("record") => record_command(&args[1..]),
        Some(other) => bail!(
            "unknown argument `{other}`; use `cargo xtask fixtures`, `--check` or `record --provider mkp|paypro`"
        ),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The generated fixtures, recorded from an in-process sandbox.
fn generate() -> Result<BTreeMap<Provider, Files>> {
    runtime()?.block_on(async {
        let sandbox = Sandbox::start(generator_config())
            .await
            .context("starting the sandbox")?;
        let config = sandbox.config();
        let mut all = BTreeMap::new();
        all.insert(
            Provider::Mkp,
            record(
                "sandbox-",
                Provider::Mkp,
                &sandbox.mkp_base_url(),
                &config.mkp_key,
                10,
                10,
            )
            .await?,
        );
        all.insert(
            Provider::PayPro,
            record(
                "sandbox-",
                Provider::PayPro,
                &sandbox.paypro_base_url(),
                &config.paypro_key,
                10,
                10,
            )
            .await?,
        );
        Ok(all)
    })
}

fn generated_dir(provider: Provider) -> PathBuf {
    fixtures_dir().join(provider.dir()).join("generated")
}

fn write_generated() -> Result<()> {
    for (provider, files) in generate()? {
        let dir = generated_dir(provider);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        write_files(&dir, &files)?;
    }
    println!("fixtures regenerated; review the snapshot changes with `cargo insta review`");
    Ok(())
}

fn write_files(dir: &Path, files: &Files) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Fails, naming each file, when the generated fixtures on disk are not what the generator
/// writes now.
pub(crate) fn check() -> Result<()> {
    let mut stale = Vec::new();
    for (provider, files) in generate()? {
        let dir = generated_dir(provider);
        for (name, text) in &files {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(on_disk) if on_disk == *text => {}
                Ok(_) => stale.push(format!("{} differs", path.display())),
                Err(_) => stale.push(format!("{} is missing", path.display())),
            }
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !files.contains_key(&name) {
                    stale.push(format!("{} is not generated", entry.path().display()));
                }
            }
        }
    }
    if !stale.is_empty() {
        bail!(
            "the generated fixtures are stale: {}; run `cargo xtask fixtures` and review the snapshot changes",
            stale.join("; ")
        );
    }
    println!("the generated fixtures are up to date");
    Ok(())
}

fn record_command(args: &[String]) -> Result<()> {
    let mut provider = None;
    let mut base_url = None;
    let mut pages = 3usize;
    let mut iter = args.iter();
    while let Some(flag) = iter.next() {
        let mut value = || {
            iter.next()
                .with_context(|| format!("{flag} needs a value"))
                .cloned()
        };
        match flag.as_str() {
            "--provider" => provider = Some(Provider::parse(&value()?)?),
            "--base-url" => base_url = Some(value()?),
            "--pages" => {
                pages = value()?
                    .parse()
                    .context("--pages needs a whole number, such as 3")?
            }
            other => bail!(
                "unknown argument `{other}`; use record --provider mkp|paypro [--base-url URL] [--pages N]"
            ),
        }
    }
    let provider = provider.context("record needs --provider mkp or --provider paypro")?;
    let base_url = base_url.unwrap_or_else(|| provider.public_base().to_owned());
    let key = std::env::var(provider.key_variable())
        .ok()
        .filter(|k| !k.is_empty())
        .with_context(|| format!("set {} to the key to record with", provider.key_variable()))?;
    let files = runtime()?.block_on(record("recorded-", provider, &base_url, &key, pages, 2))?;
    let dir = fixtures_dir().join(provider.dir()).join("recorded");
    write_files(&dir, &files)?;
    println!(
        "scrubbed of payer names, descriptions, metadata and customer ids; read them before committing"
    );
    Ok(())
}

/// Fetches up to `pages` listing pages (named with `prefix`, since snapshot names come from
/// file names) (and, for MKP, up to `link_pages` payment pages of each
/// listed link), scrubbed, as fixture files.
async fn record(
    prefix: &str,
    provider: Provider,
    base_url: &str,
    key: &str,
    pages: usize,
    link_pages: usize,
) -> Result<Files> {
    let fetcher = Fetcher::new(base_url, key)?;
    let mut files = Files::new();
    let scrub = |page: Value| scrub_page(provider, base_url, page);
    match provider {
        Provider::PayPro => {
            let mut next = Some(format!("{base_url}/payments?limit=10"));
            for n in 1..=pages {
                let Some(url) = next.take() else { break };
                let page = fetcher.get(&url).await?;
                next = page["_links"]["next"].as_str().map(str::to_owned);
                let last = if next.is_none() { "-last" } else { "" };
                files.insert(
                    format!("payments-{prefix}page-{n}{last}.json"),
                    pretty(scrub(page))?,
                );
            }
        }
        Provider::Mkp => {
            let mut next = Some(format!("{base_url}/payment-links"));
            for n in 1..=pages {
                let Some(url) = next.take() else { break };
                let page = fetcher.get(&url).await?;
                next = page["next_page_url"].as_str().map(str::to_owned);
                let ids: Vec<String> = page["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|link| link["id"].as_str().map(str::to_owned))
                    .collect();
                let last = if next.is_none() { "-last" } else { "" };
                files.insert(
                    format!("links-{prefix}page-{n}{last}.json"),
                    pretty(scrub(page))?,
                );
                for id in ids {
                    let mut link_next = Some(format!("{base_url}/payment-links/{id}/payments"));
                    for k in 1..=link_pages {
                        let Some(url) = link_next.take() else { break };
                        let page = fetcher.get(&url).await?;
                        link_next = page["next_page_url"].as_str().map(str::to_owned);
                        let last = if link_next.is_none() { "-last" } else { "" };
                        files.insert(
                            format!("payments-{id}-page-{k}{last}.json"),
                            pretty(scrub(page))?,
                        );
                    }
                }
            }
        }
    }
    Ok(files)
}

fn pretty(value: Value) -> Result<String> {
    Ok(serde_json::to_string_pretty(&value)? + "\n")
}

/// GETs JSON with the key, following no redirect and refusing any URL off the base origin.
struct Fetcher {
    client: reqwest::Client,
    origin: url::Origin,
    key: String,
}

impl Fetcher {
    fn new(base_url: &str, key: &str) -> Result<Fetcher> {
        let base =
            url::Url::parse(base_url).with_context(|| format!("`{base_url}` is not a URL"))?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        Ok(Fetcher {
            client,
            origin: base.origin(),
            key: key.to_owned(),
        })
    }

    async fn get(&self, url: &str) -> Result<Value> {
        let parsed = url::Url::parse(url).with_context(|| format!("`{url}` is not a URL"))?;
        if parsed.origin() != self.origin {
            bail!(
                "refusing {url}: it is not on the base URL's origin, and the key must not leave it"
            );
        }
        let response = self
            .client
            .get(parsed)
            .bearer_auth(&self.key)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .with_context(|| format!("GET {url}"))?;
        if !status.is_success() {
            bail!("GET {url} answered {status}; check the key and the base URL");
        }
        serde_json::from_slice(&body).with_context(|| format!("GET {url} did not answer JSON"))
    }
}

/// A short stable tag for `text`: FNV-1a, so scrubbing is the same on every machine.
fn tag(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:08X}", hash >> 32)
}

/// Replaces personal data with stable stand-ins and points every URL at the provider's public
/// base, so a recording depends on neither the payer nor the port it was recorded on.
fn scrub_page(provider: Provider, base_url: &str, mut page: Value) -> Value {
    rewrite_urls(
        &mut page,
        base_url.trim_end_matches('/'),
        provider.public_base(),
    );
    if let Some(records) = page["data"].as_array_mut() {
        for record in records {
            scrub_record(record);
        }
    }
    page
}

fn rewrite_urls(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::String(text) if text.starts_with(from) => {
            *text = format!("{to}{}", &text[from.len()..]);
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_urls(v, from, to)),
        Value::Object(map) => map.values_mut().for_each(|v| rewrite_urls(v, from, to)),
        _ => {}
    }
}

fn scrub_record(record: &mut Value) {
    let Some(map) = record.as_object_mut() else {
        return;
    };
    let mut replace = |field: &str, stand_in: &dyn Fn(&str) -> String| {
        if let Some(Value::String(text)) = map.get_mut(field)
            && !text.is_empty()
        {
            *text = stand_in(text);
        }
    };
    replace("payersName", &|t| format!("Payer {}", tag(t)));
    replace("description", &|t| format!("Description {}", tag(t)));
    replace("customer", &|t| format!("CU{}", tag(t)));
    replace("mandate", &|t| format!("MD{}", tag(t)));
    replace("return_url", &|_| {
        "https://shop.example.invalid/return".to_owned()
    });
    replace("cancel_url", &|_| {
        "https://shop.example.invalid/cancel".to_owned()
    });
    if map.contains_key("metadata") {
        map.insert("metadata".to_owned(), Value::Object(Default::default()));
    }
    if let Some(Value::Object(links)) = map.get_mut("_links") {
        links.remove("customer");
        links.remove("mandate");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_fixtures_are_up_to_date() {
        if let Err(error) = check() {
            panic!("{error:#}");
        }
    }

    #[test]
    fn scrubbing_replaces_personal_data_with_stable_stand_ins() {
        let page = serde_json::json!({
            "data": [{
                "id": "PP1",
                "description": "Invoice for Jan Jansen",
                "payersName": "Jan Jansen",
                "customer": "CU7JRN6W6K3DA9",
                "metadata": {"email": "jan@example.com"},
                "return_url": "https://jansen.nl/thanks",
                "_links": {"self": "http://127.0.0.1:4000/paypro/payments/PP1", "customer": "http://127.0.0.1:4000/paypro/customers/CU7JRN6W6K3DA9"}
            }]
        });
        let scrubbed = scrub_page(
            Provider::PayPro,
            "http://127.0.0.1:4000/paypro",
            page.clone(),
        );
        let text = scrubbed.to_string();
        for personal in ["Jansen", "CU7JRN6W6K3DA9", "jan@example.com", "127.0.0.1"] {
            assert!(!text.contains(personal), "{personal} survived: {text}");
        }
        assert_eq!(
            scrubbed["data"][0]["_links"]["self"],
            "https://api.paypro.nl/payments/PP1"
        );
        assert_eq!(scrubbed["data"][0]["id"], "PP1", "ids are kept");
        assert_eq!(
            scrubbed,
            scrub_page(Provider::PayPro, "http://127.0.0.1:4000/paypro", page),
            "deterministic"
        );
    }
}
