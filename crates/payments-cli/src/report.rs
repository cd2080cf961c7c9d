//! `payments report`: a month per source, and the ledger's balance reconciled with the
//! provider's.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use futures::TryStreamExt;
use payments_model::{
    BookKind, Currency, Money, MovementKind, Source, payment_movement, record_movements,
};
use payments_sources::{SourceSpec, default_base_url};
use payments_sync::Filter;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::outcome::{CliError, Exit, printable};
use crate::{BooksLedger, BooksLedgerArgs};

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
    #[arg(long, value_name = "AMOUNT", default_value = "0.00")]
    opening_balance: String,
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

/// Sums of money by a key, exact.
#[derive(Debug, Default)]
struct Tally {
    count: u64,
    sum: Option<Money>,
}

impl Tally {
    fn add(&mut self, amount: Money) {
        self.count += 1;
        self.sum = Some(match self.sum {
            Some(sum) => sum.checked_add(amount).unwrap_or(sum),
            None => amount,
        });
    }

    fn json(&self) -> Value {
        json!({"count": self.count, "sum": self.sum.map(|s| s.amount_string())})
    }
}

fn money_json(money: Money) -> Value {
    json!(money.amount_string())
}

pub(crate) async fn run(args: ReportArgs) -> Result<Exit, CliError> {
    let opening = Money::parse(args.opening_balance.trim(), Currency::EUR).map_err(|e| {
        CliError::config(format!(
            "--opening-balance `{}` is not an amount in EUR ({e})",
            printable(&args.opening_balance)
        ))
    })?;
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
        let report = paypro(ledger.as_ref(), opening, start, end).await?;
        let balance = provider_balance(&args).await;
        let reconciliation = reconcile(&report, balance);
        unexplained |= reconciliation.get("state") == Some(&json!("unexplained"));
        let mut section = report.json();
        section.insert("reconciliation".into(), reconciliation);
        text.push_str(&paypro_text(&section));
        out.insert(Source::PayPro.as_str().into(), Value::Object(section));
    }
    if wanted(Source::Mkp) {
        let section = mkp(ledger.as_ref(), start, end).await?;
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

/// What the ledger says of PayPro's month and balance.
struct PayProReport {
    by_status: BTreeMap<String, Tally>,
    by_kind: BTreeMap<&'static str, Tally>,
    payouts: Vec<Value>,
    opening: Money,
    closing: Money,
    now: Money,
    /// Refunds and chargebacks a payment shows that no listed record accounts for.
    unlisted: Vec<(String, Money)>,
}

impl PayProReport {
    fn json(&self) -> serde_json::Map<String, Value> {
        let mut map = serde_json::Map::new();
        map.insert(
            "payments_by_status".into(),
            Value::Object(
                self.by_status
                    .iter()
                    .map(|(k, t)| (k.clone(), t.json()))
                    .collect(),
            ),
        );
        map.insert(
            "movements".into(),
            Value::Object(
                self.by_kind
                    .iter()
                    .map(|(k, t)| ((*k).to_owned(), t.json()))
                    .collect(),
            ),
        );
        let net = self.closing.checked_add(self.opening.negated());
        map.insert("net".into(), json!(net.map(|n| n.amount_string())));
        map.insert("payouts".into(), json!(self.payouts));
        map.insert("opening_balance".into(), money_json(self.opening));
        map.insert("closing_balance".into(), money_json(self.closing));
        map.insert("ledger_balance_now".into(), money_json(self.now));
        map
    }
}

async fn paypro(
    ledger: &dyn BooksLedger,
    opening: Money,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<PayProReport, CliError> {
    let mut report = PayProReport {
        by_status: BTreeMap::new(),
        by_kind: BTreeMap::new(),
        payouts: Vec::new(),
        opening,
        closing: opening,
        now: opening,
        unlisted: Vec::new(),
    };
    let account =
        |report: &mut PayProReport, amount: Money, kind: MovementKind, at: DateTime<Utc>| {
            let add = |m: Money| m.checked_add(amount).unwrap_or(m);
            report.now = add(report.now);
            if at < start {
                report.opening = add(report.opening);
            }
            if at < end {
                report.closing = add(report.closing);
            }
            if (start..end).contains(&at) {
                report.by_kind.entry(kind.as_str()).or_default().add(amount);
            }
        };
    // What each payment says was refunded and charged back, to find what no record lists.
    let mut said: HashMap<String, (Money, Money)> = HashMap::new();
    let filter = Filter {
        sources: vec![Source::PayPro],
        ..Filter::default()
    };
    let mut payments = ledger.payments(&filter).await?;
    while let Some(payment) = payments.try_next().await? {
        let created = payment.created_at.to_utc();
        if (start..end).contains(&created) {
            report
                .by_status
                .entry(payment.status.as_str().to_owned())
                .or_default()
                .add(payment.amount);
        }
        if let Some(movement) = payment_movement(&payment) {
            account(
                &mut report,
                movement.amount,
                movement.kind,
                movement.value_at.to_utc(),
            );
            let zero = Money::zero(payment.currency());
            said.insert(
                payment.id.clone(),
                (
                    payment.refunded_amount.unwrap_or(zero),
                    payment.charged_back_amount.unwrap_or(zero),
                ),
            );
        }
    }
    for kept in ledger.records(Source::PayPro).await? {
        let record = &kept.record;
        let returned = kept.returned_at.map(|at| at.fixed_offset());
        let moves = record_movements(record, returned);
        for movement in &moves {
            account(
                &mut report,
                movement.amount,
                movement.kind,
                movement.value_at.to_utc(),
            );
        }
        if let Some(said) = record.payment_id.as_ref().and_then(|id| said.get_mut(id)) {
            let listed: Money = moves
                .iter()
                .fold(Money::zero(record.amount.currency()), |sum, m| {
                    sum.checked_add(m.amount.negated()).unwrap_or(sum)
                });
            match record.kind {
                BookKind::Refund => said.0 = said.0.checked_add(listed.negated()).unwrap_or(said.0),
                BookKind::Chargeback => {
                    said.1 = said.1.checked_add(listed.negated()).unwrap_or(said.1)
                }
                BookKind::Payout => {}
            }
        }
        if record.kind == BookKind::Payout && (start..end).contains(&record.created_at.to_utc()) {
            report.payouts.push(json!({
                "id": record.source_id,
                "state": record.state,
                "amount": record.amount.amount_string(),
                "fee": record.fee.map(|f| f.amount_string()),
                "fee_vat": record.fee_vat.map(|f| f.amount_string()),
                "created_at": payments_model::format_timestamp(&record.created_at),
            }));
        }
    }
    let mut unlisted: Vec<(String, Money)> = said
        .into_iter()
        .flat_map(|(id, (refunded, charged_back))| {
            [
                (
                    format!("refunds of {id} that /refunds does not list"),
                    refunded,
                ),
                (
                    format!("chargebacks of {id} that /chargebacks does not list"),
                    charged_back,
                ),
            ]
        })
        .filter(|(_, amount)| !amount.is_zero())
        .collect();
    unlisted.sort_by(|a, b| a.0.cmp(&b.0));
    report.unlisted = unlisted;
    Ok(report)
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

/// The reconciliation of the ledger's balance now with the provider's.
fn reconcile(report: &PayProReport, provider: Result<Option<Money>, String>) -> Value {
    let provider = match provider {
        Err(why) => return json!({"state": "not_checked", "why": why}),
        Ok(None) => return json!({"state": "not_checked", "why": "PayPro reports no EUR balance"}),
        Ok(Some(provider)) => provider,
    };
    let difference = report
        .now
        .checked_add(provider.negated())
        .unwrap_or(report.now);
    let base = json!({
        "ledger": report.now.amount_string(),
        "provider": provider.amount_string(),
        "difference": difference.amount_string(),
    });
    let mut map = base.as_object().cloned().unwrap_or_default();
    if difference.is_zero() {
        map.insert("state".into(), json!("reconciled"));
        return Value::Object(map);
    }
    // A refund or chargeback the payment shows but no record lists: the ledger has not
    // debited it, so its balance is higher by that much.
    let explained = report
        .unlisted
        .iter()
        .fold(Money::zero(difference.currency()), |sum, (_, m)| {
            sum.checked_add(*m).unwrap_or(sum)
        });
    let rest = difference
        .checked_add(explained.negated())
        .unwrap_or(difference);
    map.insert(
        "explained_by".into(),
        json!(
            report
                .unlisted
                .iter()
                .map(|(what, amount)| json!({"what": what, "amount": amount.amount_string()}))
                .collect::<Vec<_>>()
        ),
    );
    if rest.is_zero() {
        map.insert("state".into(), json!("explained"));
    } else {
        map.insert("state".into(), json!("unexplained"));
        map.insert("unexplained".into(), json!(rest.amount_string()));
    }
    Value::Object(map)
}

async fn mkp(
    ledger: &dyn BooksLedger,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Value, CliError> {
    let filter = Filter {
        sources: vec![Source::Mkp],
        since: Some(start),
        until: Some(end),
        ..Filter::default()
    };
    let mut by_status: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_processor: BTreeMap<String, Tally> = BTreeMap::new();
    let mut payments = ledger.payments(&filter).await?;
    while let Some(payment) = payments.try_next().await? {
        by_status
            .entry(payment.status.as_str().to_owned())
            .or_default()
            .add(payment.amount);
        if payment_movement(&payment).is_some() {
            by_processor
                .entry(payment.processor.clone())
                .or_default()
                .add(payment.amount);
        }
    }
    Ok(json!({
        "payments_by_status": by_status.iter().map(|(k, t)| (k.clone(), t.json())).collect::<serde_json::Map<_, _>>(),
        "received_by_processor": by_processor.iter().map(|(k, t)| (k.clone(), t.json())).collect::<serde_json::Map<_, _>>(),
    }))
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
