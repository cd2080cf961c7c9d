//! `payments report`: a month per source, and the ledger's balance reconciled with the
//! provider's.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use payments_books::{BalanceMonth, Tally};
use payments_model::{BookKind, Currency, Money, Source};
use payments_sources::{SourceSpec, default_base_url};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::BooksLedgerArgs;
use crate::outcome::{CliError, Exit, printable};

/// Reports a month per source: payments by status (count and sum), what was received,
/// refunded and charged back, and the net; for PayPro its payouts with their fees and the
/// balance at the month's opening and closing; for MKP, whose money sits at its processors,
/// the same per processor. Then the reconciliation: the ledger's PayPro balance now against
/// PayPro's own (`/balances`, with PAYPRO_API_KEY), "reconciled", or the difference with what
/// explains it, or "unexplained". Exits 1 when an unexplained difference remains, so that it
/// can run from cron before the month is closed.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct ReportArgs {
    #[command(flatten)]
    ledger: BooksLedgerArgs,
    /// The month, YYYY-MM.
    #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
    month: NaiveDate,
    /// Only these sources (mkp, paypro); repeatable.
    #[arg(long = "source", value_name = "SOURCE", value_parser = crate::export::parse_source)]
    sources: Vec<Source>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// The time zone whose days make the month.
    #[arg(long, value_name = "ZONE", default_value = "Europe/Amsterdam", value_parser = crate::export::parse_zone)]
    tz: Tz,
    /// The balance before every movement the ledger holds (as `statement --opening-balance`).
    #[arg(long, value_name = "AMOUNT", default_value = "0.00", value_parser = crate::statement::parse_opening_balance)]
    opening_balance: Money,
    /// The PayPro API key, to ask PayPro's balance (prefer the variable).
    #[arg(
        long,
        env = "PAYPRO_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    paypro_api_key: Option<String>,
    /// The PayPro API.
    #[arg(long, env = "PAYPRO_BASE_URL", default_value = default_base_url(Source::PayPro), value_name = "URL")]
    paypro_base_url: String,
}

const EXAMPLES: &str = r#"Examples:
  PAYPRO_API_KEY=... payments report --month 2026-10
  payments report --month 2026-10 --source mkp --json"#;

fn parse_month(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d")
        .map_err(|_| format!("`{text}` is not a month; write it like 2026-10"))
}

fn tally_json(tally: &Tally) -> Value {
    json!({"count": tally.count, "sum": tally.sum.map(|s| s.amount_string())})
}

fn tallies_json<K: ToString>(tallies: &BTreeMap<K, Tally>) -> Value {
    Value::Object(
        tallies
            .iter()
            .map(|(k, t)| (k.to_string(), tally_json(t)))
            .collect(),
    )
}

fn money_json(money: Money) -> Value {
    json!(money.amount_string())
}

pub(crate) async fn run(args: ReportArgs) -> Result<Exit, CliError> {
    let opening = args.opening_balance;
    let start = midnight(args.tz, args.month)?;
    let (first, next) = payments_books::month_days(
        chrono::Datelike::year(&args.month),
        chrono::Datelike::month(&args.month),
    )
    .ok_or_else(|| CliError::config("the month is out of range"))?;
    let end = midnight(args.tz, next)?;
    let ledger = args.ledger.open().await?;
    let wanted = |source: Source| args.sources.is_empty() || args.sources.contains(&source);
    let mut out = serde_json::Map::new();
    out.insert("month".into(), json!(first.format("%Y-%m").to_string()));
    let mut unexplained = false;
    let mut text = String::new();
    if wanted(Source::PayPro) {
        let month =
            payments_books::balance_month(ledger.as_ref(), Source::PayPro, opening, start, end)
                .await?;
        let reconciliation = reconciliation_json(&month, provider_balance(&args).await);
        unexplained |= reconciliation.get("state") == Some(&json!("unexplained"));
        let mut section = balance_json(&month);
        section.insert("reconciliation".into(), reconciliation);
        text.push_str(&paypro_text(&section));
        out.insert(Source::PayPro.as_str().into(), Value::Object(section));
    }
    if wanted(Source::Mkp) {
        let month =
            payments_books::processor_month(ledger.as_ref(), Source::Mkp, start, end).await?;
        let section = json!({
            "payments_by_status": tallies_json(&month.by_status),
            "received_by_processor": tallies_json(&month.received_by_processor),
        });
        text.push_str(&mkp_text(&section));
        out.insert(Source::Mkp.as_str().into(), section);
    }
    if args.json {
        println!("{}", Value::Object(out));
    } else {
        print!("{text}");
    }
    Ok(if unexplained {
        Exit::Failed
    } else {
        Exit::Done
    })
}

fn midnight(tz: Tz, day: NaiveDate) -> Result<DateTime<Utc>, CliError> {
    day.and_hms_opt(0, 0, 0)
        .and_then(|m| tz.from_local_datetime(&m).earliest())
        .map(|at| at.with_timezone(&Utc))
        .ok_or_else(|| CliError::config(format!("the day {day} is out of range in {tz}")))
}

fn balance_json(month: &BalanceMonth) -> serde_json::Map<String, Value> {
    let mut map = serde_json::Map::new();
    map.insert("payments_by_status".into(), tallies_json(&month.by_status));
    map.insert(
        "movements".into(),
        Value::Object(
            month
                .by_kind
                .iter()
                .map(|(k, t)| (k.as_str().to_owned(), tally_json(t)))
                .collect(),
        ),
    );
    let net = month.closing.checked_add(month.opening.negated());
    map.insert("net".into(), json!(net.map(|n| n.amount_string())));
    let payouts: Vec<Value> = month
        .payouts
        .iter()
        .map(|record| {
            json!({
                "id": record.source_id,
                "state": record.state,
                "amount": record.amount.amount_string(),
                "fee": record.fee.map(|f| f.amount_string()),
                "fee_vat": record.fee_vat.map(|f| f.amount_string()),
                "created_at": payments_model::format_timestamp(&record.created_at),
            })
        })
        .collect();
    map.insert("payouts".into(), json!(payouts));
    map.insert("opening_balance".into(), money_json(month.opening));
    map.insert("closing_balance".into(), money_json(month.closing));
    map.insert("ledger_balance_now".into(), money_json(month.now));
    map
}

/// PayPro's own balance, or why it could not be asked.
async fn provider_balance(args: &ReportArgs) -> Result<Option<Money>, String> {
    let Some(key) = args.paypro_api_key.clone().filter(|k| !k.trim().is_empty()) else {
        return Err("not checked: set PAYPRO_API_KEY to compare with PayPro's balance".to_owned());
    };
    let source = SourceSpec::new(Source::PayPro)
        .with_base_url(&args.paypro_base_url)
        .build(&SecretString::from(key))
        .map_err(|e| format!("not checked: PAYPRO_BASE_URL: {e}"))?;
    let balances = source
        .balances()
        .await
        .map_err(|e| format!("not checked: PayPro's balance could not be read: {e}"))?;
    Ok(balances.and_then(|b| {
        b.balances
            .into_iter()
            .find(|b| b.amount.currency() == Currency::EUR)
            .map(|b| b.amount)
    }))
}

/// The reconciliation of the ledger's balance now with the provider's, as JSON.
fn reconciliation_json(month: &BalanceMonth, provider: Result<Option<Money>, String>) -> Value {
    let provider = match provider {
        Err(why) => return json!({"state": "not_checked", "why": why}),
        Ok(None) => return json!({"state": "not_checked", "why": "PayPro reports no EUR balance"}),
        Ok(Some(provider)) => provider,
    };
    let r = payments_books::reconcile(month, provider);
    let mut map = serde_json::Map::new();
    map.insert("ledger".into(), money_json(r.ledger));
    map.insert("provider".into(), money_json(r.provider));
    map.insert("difference".into(), money_json(r.difference));
    map.insert("state".into(), json!(r.state()));
    if r.state() != "reconciled" {
        let explained: Vec<Value> = r
            .explained_by
            .iter()
            .map(|u| {
                let what = match u.kind {
                    BookKind::Chargeback => format!(
                        "chargebacks of {} that /chargebacks does not list",
                        u.payment_id
                    ),
                    _ => format!("refunds of {} that /refunds does not list", u.payment_id),
                };
                json!({"what": what, "amount": u.amount.amount_string()})
            })
            .collect();
        map.insert("explained_by".into(), json!(explained));
    }
    if r.state() == "unexplained" {
        map.insert("unexplained".into(), money_json(r.unexplained));
    }
    Value::Object(map)
}

fn tally_lines(title: &str, value: &Value) -> String {
    let mut out = format!("  {title}:\n");
    if let Some(map) = value.as_object() {
        if map.is_empty() {
            out.push_str("    none\n");
        }
        for (key, tally) in map {
            out.push_str(&format!(
                "    {:<20} {:>6}  {:>14}\n",
                printable(key),
                tally["count"],
                tally["sum"].as_str().unwrap_or("0.00")
            ));
        }
    }
    out
}

fn paypro_text(section: &serde_json::Map<String, Value>) -> String {
    let text = |key: &str| {
        section
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let mut out = String::from("paypro\n");
    out.push_str(&tally_lines(
        "payments created, by status",
        &section["payments_by_status"],
    ));
    out.push_str(&tally_lines(
        "movements of the balance",
        &section["movements"],
    ));
    out.push_str(&format!(
        "  balance: opening {}  closing {}  net {}\n",
        text("opening_balance"),
        text("closing_balance"),
        section["net"].as_str().unwrap_or("")
    ));
    if let Some(payouts) = section["payouts"].as_array() {
        out.push_str(&format!("  payouts: {}\n", payouts.len()));
        for payout in payouts {
            out.push_str(&format!(
                "    {} {} {} (fee {}, VAT {})\n",
                printable(payout["id"].as_str().unwrap_or("")),
                printable(payout["state"].as_str().unwrap_or("")),
                payout["amount"].as_str().unwrap_or(""),
                payout["fee"].as_str().unwrap_or("0.00"),
                payout["fee_vat"].as_str().unwrap_or("0.00")
            ));
        }
    }
    let r = &section["reconciliation"];
    let state = r["state"].as_str().unwrap_or("");
    match state {
        "reconciled" => out.push_str(&format!(
            "  reconciliation: reconciled (ledger {} = PayPro {})\n",
            r["ledger"].as_str().unwrap_or(""),
            r["provider"].as_str().unwrap_or("")
        )),
        "not_checked" => out.push_str(&format!(
            "  reconciliation: {}\n",
            printable(r["why"].as_str().unwrap_or(""))
        )),
        _ => {
            out.push_str(&format!(
                "  reconciliation: ledger {} against PayPro {}: a difference of {}\n",
                r["ledger"].as_str().unwrap_or(""),
                r["provider"].as_str().unwrap_or(""),
                r["difference"].as_str().unwrap_or("")
            ));
            for item in r["explained_by"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "    explained: {} {}\n",
                    item["amount"].as_str().unwrap_or(""),
                    printable(item["what"].as_str().unwrap_or(""))
                ));
            }
            if let Some(rest) = r["unexplained"].as_str() {
                out.push_str(&format!(
                    "    unexplained: {rest} (no movement the ledger knows explains it; run `payments sync`, then compare `payments export` with PayPro's dashboard)\n"
                ));
            }
        }
    }
    out
}

fn mkp_text(section: &Value) -> String {
    let mut out = String::from("mkp (its money sits at its processors)\n");
    out.push_str(&tally_lines(
        "payments created, by status",
        &section["payments_by_status"],
    ));
    out.push_str(&tally_lines(
        "received, by processor",
        &section["received_by_processor"],
    ));
    out
}
