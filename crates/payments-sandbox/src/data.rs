//! The sandbox's data set: every record is a pure function of the seed and its index, so an
//! account of a million payments costs no memory, and the same seed always gives the same data.
//! Changes made while the sandbox runs (new statuses, inserted payments) live in overlays.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Duration, FixedOffset, TimeZone, Utc};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde::Serialize;

/// An MKP payment link, in MKP's wire format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MkpLink {
    /// `plk_…`.
    pub id: String,
    /// What it is for, or null.
    pub description: Option<String>,
    /// `"EUR"`.
    pub currency: &'static str,
    /// Decimal string in major units.
    pub amount: String,
    /// Whether it accepts several payments.
    pub reusable: bool,
    /// ATOM timestamp or null.
    pub expires_at: Option<String>,
    /// `open` | `paid` | `expired` | `closed`.
    pub status: String,
    /// Null once the link can no longer be used.
    pub checkout_url: Option<String>,
    /// ATOM timestamp.
    pub created_at: String,
}

/// An MKP payment-link payment, in MKP's wire format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MkpPayment {
    /// `plp_…`.
    pub id: String,
    /// `plk_…`.
    pub payment_link_id: String,
    /// `"EUR"`.
    pub currency: &'static str,
    /// Decimal string in major units.
    pub amount: String,
    /// `canceled` | `chargebacked` | `failed` | `paid` | `pending`, or an undocumented word.
    pub status: String,
    /// The payer's name, or null.
    pub payers_name: Option<String>,
    /// `mollie` | `buckaroo` | `paynl` | `stripe`.
    pub integration: &'static str,
    /// The processor's reference.
    pub integration_id: String,
    /// ATOM timestamp with offset.
    pub created_at: String,
}

/// A PayPro payment, in PayPro's wire format (without `_links`, which name the host).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PayProPayment {
    /// `PP…`.
    pub id: String,
    /// `"payment"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Minor units.
    pub amount: i64,
    /// Free text.
    pub description: String,
    /// `"EUR"`.
    pub currency: &'static str,
    /// The method object.
    pub pay_method: PayMethod,
    /// The state word.
    pub state: String,
    /// Minor units refunded.
    pub refunded_amount: i64,
    /// Return URL.
    pub return_url: Option<String>,
    /// Cancel URL.
    pub cancel_url: Option<String>,
    /// Always `{}`.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// `CU…` or null.
    pub customer: Option<String>,
    /// Always null here.
    pub mandate: Option<String>,
    /// Always null here.
    pub subscription: Option<String>,
    /// Always null here.
    pub installment_plan: Option<String>,
    /// `nl` or `en`.
    pub locale: &'static str,
    /// RFC 3339 UTC or null.
    pub paid_at: Option<String>,
    /// Present on failed payments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_reason: Option<String>,
    /// RFC 3339 UTC.
    pub created_at: String,
}

/// PayPro's `pay_method` object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PayMethod {
    /// `ideal`, ….
    pub id: &'static str,
    /// `"pay_method"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Display name.
    pub name: &'static str,
}

/// A PayPro refund, in PayPro's wire format (without `_links`, which name the host).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PayProRefund {
    /// `PR…`.
    pub id: String,
    /// `"refund"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Minor units.
    pub amount: i64,
    /// `"EUR"`.
    pub currency: &'static str,
    /// Free text.
    pub description: Option<String>,
    /// The refunded payment's id (`PP…`).
    pub payment: String,
    /// Why, or null.
    pub reason: Option<String>,
    /// RFC 3339 UTC once refunded, or null.
    pub refunded_at: Option<String>,
    /// The state word (the sandbox's refunds are `completed`).
    pub state: String,
    /// RFC 3339 UTC.
    pub created_at: String,
}

/// A PayPro chargeback, in PayPro's wire format (without `_links`, which name the host).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PayProChargeback {
    /// `PC…`.
    pub id: String,
    /// `"chargeback"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Minor units.
    pub amount: i64,
    /// `"EUR"`.
    pub currency: &'static str,
    /// Free text.
    pub description: Option<String>,
    /// The charged-back payment's id (`PP…`).
    pub payment: String,
    /// The bank's reason code (`MD06`, …).
    pub reason: Option<String>,
    /// `completed`, or `processing` while it is not.
    pub state: String,
    /// RFC 3339 UTC once completed, or null.
    pub charged_back_at: Option<String>,
    /// RFC 3339 UTC.
    pub created_at: String,
}

/// A PayPro customer, as far as the sandbox's `customer.created` events show one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PayProCustomer {
    /// `CU…`.
    pub id: String,
    /// `"customer"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// An address on `sandbox.invalid`.
    pub email: String,
    /// The customer's name: only written when a test set one
    /// (`Sandbox::set_paypro_text`), as the generated customers have none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// RFC 3339 UTC.
    pub created_at: String,
}

/// A PayPro payout, in PayPro's wire format (without `_links`, which name the host): money
/// transferred from the balance to the merchant's bank account, its fee and the fee's VAT
/// withheld with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PayProPayout {
    /// `PO…`.
    pub id: String,
    /// `"payout"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// What was transferred to the bank account, in minor units.
    pub amount: i64,
    /// The fee withheld from the balance with it, in minor units.
    pub fee_amount: i64,
    /// The VAT on the fee, withheld with it, in minor units.
    pub fee_vat_amount: i64,
    /// `"EUR"`.
    pub currency: &'static str,
    /// `created`, `approved`, `paid`, `rejected` or `failed`.
    pub state: String,
    /// Where it went.
    pub bank_account: PayProBankAccount,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC once paid, or null.
    pub paid_at: Option<String>,
}

impl PayProPayout {
    /// What it takes from the balance: `amount + fee_amount + fee_vat_amount`.
    pub fn total(&self) -> i64 {
        self.amount + self.fee_amount + self.fee_vat_amount
    }

    /// Whether it did not happen (`rejected` or `failed`): the balance gets its total back.
    pub fn is_undone(&self) -> bool {
        is_undone_word(&self.state)
    }
}

/// A payout's `bank_account`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PayProBankAccount {
    /// The IBAN (fictitious, with valid check digits).
    pub iban: String,
    /// The account holder.
    pub name: String,
}

/// One balance of `GET /balances`, in PayPro's wire format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PayProBalance {
    /// `"balance"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `"EUR"`.
    pub currency: &'static str,
    /// What the balance holds, in minor units: paid payments − refunds − completed chargebacks
    /// − payouts with their fees, over the account's whole life.
    pub amount: i64,
    /// What is on its way and not yet in `amount` (always 0 here).
    pub pending_amount: i64,
}

/// Whether a refund's or payout's state says it did not happen (`failed`, `rejected`,
/// `canceled`, `cancelled`, any case), as the ledger reads it.
pub(crate) fn is_undone_word(state: &str) -> bool {
    ["failed", "rejected", "canceled", "cancelled"]
        .iter()
        .any(|word| state.trim().eq_ignore_ascii_case(word))
}

/// Whether a chargeback's state says it is done (`completed`, any case).
pub(crate) fn is_completed_word(state: &str) -> bool {
    state.trim().eq_ignore_ascii_case("completed")
}

/// Whether a payment in this PayPro state brought money in, as the ledger's status table reads
/// the word (any case): paid, completed (also partly or fully refunded), refunded, charged
/// back.
pub(crate) fn credits_balance(state: &str) -> bool {
    [
        "paid",
        "completed",
        "refunded",
        "chargeback",
        "chargebacked",
    ]
    .iter()
    .any(|word| state.eq_ignore_ascii_case(word))
}

/// What a PayPro event carries: the object as it was at the event (its own `type` says which).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
#[allow(clippy::large_enum_variant)] // test data, made a few at a time: plain to match on
pub enum PayProPayload {
    /// `payment.created`, `payment.paid`.
    Payment(PayProPayment),
    /// `refund.created`.
    Refund(PayProRefund),
    /// `chargeback.created`.
    Chargeback(PayProChargeback),
    /// `customer.created`: a payload the ledger has no use for.
    Customer(PayProCustomer),
    /// `payout.created`, `payout.approved`, `payout.paid`, `payout.rejected`, `payout.failed`.
    Payout(PayProPayout),
}

/// A PayPro event, in PayPro's wire format (without `_links`, which name the host).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PayProEvent {
    /// `EV…`.
    pub id: String,
    /// `"event"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `payment.created`, `payment.paid`, `refund.created`, `chargeback.created`,
    /// `customer.created`, `payout.created|approved|paid|rejected|failed`.
    pub event_type: String,
    /// The object as it was at the event.
    pub payload: PayProPayload,
    /// RFC 3339 UTC.
    pub created_at: String,
}

const LINK_DESCRIPTIONS: [&str; 8] = [
    "Lidmaatschap",
    "Factuur",
    "Workshop",
    "Donatie",
    "Cursus",
    "Abonnement",
    "Consult",
    "Ticket",
];
const NAMES: [&str; 8] = [
    "Jan Jansen",
    "Marie de Vries",
    "Piet Pietersen",
    "Anna Bakker",
    "Sanne Visser",
    "Daan Smit",
    "Emma Mulder",
    "Lucas de Boer",
];
const PROCESSORS: [&str; 4] = ["mollie", "buckaroo", "paynl", "stripe"];
const METHODS: [(&str, &str); 4] = [
    ("ideal", "iDEAL"),
    ("bancontact", "Bancontact"),
    ("creditcard", "Credit card"),
    ("bank_transfer", "Bank transfer"),
];
const FAIL_REASONS: [&str; 3] = [
    "The card holder lacks sufficient funds to complete the transaction.",
    "The issuer has declined the transaction for authentication reasons.",
    "The payment is declined.",
];

/// The fixed instant the default data set is anchored on (its newest payment).
pub fn default_anchor() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("a valid date")
}

/// A deterministic random stream for record `index` of kind `stream`.
pub(crate) fn rng(seed: u64, stream: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng.set_word_pos(u128::from(index) * 64);
    rng
}

pub(crate) fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    rng.next_u64() % n
}

/// MKP timestamps carry Dutch offsets: +02:00 in summer months, +01:00 otherwise.
fn dutch(at: DateTime<Utc>) -> String {
    let hours = if (4..=10).contains(&at.month()) { 2 } else { 1 };
    let offset = FixedOffset::east_opt(hours * 3600).expect("a valid offset");
    at.with_timezone(&offset)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

pub(crate) fn utc(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn euros(cents: u64, whole: bool) -> String {
    if whole && cents.is_multiple_of(100) {
        (cents / 100).to_string()
    } else {
        format!("{}.{:02}", cents / 100, cents % 100)
    }
}

/// The generated part of the data set, before overlays.
#[derive(Clone, Debug)]
pub(crate) struct Generator {
    pub(crate) seed: u64,
    pub(crate) mkp_links: usize,
    pub(crate) paypro_payments: usize,
    pub(crate) anchor: DateTime<Utc>,
    /// Seconds between generated PayPro payments (at least 1).
    pub(crate) paypro_spacing: i64,
    /// Seconds between generated MKP links.
    pub(crate) mkp_link_spacing: i64,
    /// Seconds between generated PayPro payouts; 0: none.
    pub(crate) paypro_payout_spacing: i64,
    /// The payouts computed so far and the balance of the generated data (see `payouts.rs`).
    pub(crate) payouts: std::sync::Arc<crate::payouts::PayoutCache>,
}

impl Generator {
    /// How many payments link `j` has: a few, none, or (every 40th link) hundreds.
    pub(crate) fn mkp_payment_count(&self, j: usize) -> usize {
        let mut r = rng(self.seed, 1, j as u64);
        let _ = r.next_u64();
        if j % 40 == 7 {
            100 + below(&mut r, 201) as usize
        } else {
            below(&mut r, 5) as usize
        }
    }

    pub(crate) fn mkp_link(&self, j: usize) -> MkpLink {
        let mut r = rng(self.seed, 1, j as u64);
        let tag = r.next_u64() as u32;
        let _count_roll = r.next_u64();
        let id = format!("plk_{j:06}{tag:08x}");
        let status = match below(&mut r, 100) {
            0..30 => "open",
            30..55 => "paid",
            55..80 => "expired",
            _ => "closed",
        };
        let reusable = status == "open" && below(&mut r, 2) == 0 || j % 40 == 7;
        let cents = 100 + below(&mut r, 50_000);
        let description = (below(&mut r, 10) != 0).then(|| {
            format!(
                "{} {}",
                LINK_DESCRIPTIONS[below(&mut r, 8) as usize],
                1000 + j
            )
        });
        let age =
            (self.mkp_links - j) as i64 * self.mkp_link_spacing + below(&mut r, 5) as i64 * 3600;
        let created = self.anchor - Duration::seconds(age) - Duration::days(30);
        MkpLink {
            checkout_url: (status == "open").then(|| format!("https://pay.sandbox.invalid/{id}")),
            expires_at: match status {
                "expired" => Some(dutch(created + Duration::days(7))),
                "open" if !reusable => Some(dutch(self.anchor + Duration::days(30))),
                _ => None,
            },
            id,
            description,
            currency: "EUR",
            amount: euros(cents, below(&mut r, 10) == 0),
            reusable,
            status: status.to_owned(),
            created_at: dutch(created),
        }
    }

    /// Finds the index of a generated link by its id.
    pub(crate) fn mkp_link_index(&self, id: &str) -> Option<usize> {
        let j: usize = id.strip_prefix("plk_")?.get(..6)?.parse().ok()?;
        (j < self.mkp_links && self.mkp_link(j).id == id).then_some(j)
    }

    pub(crate) fn mkp_payment(&self, link: &MkpLink, j: usize, k: usize) -> MkpPayment {
        let mut r = rng(self.seed, 2, ((j as u64) << 20) | k as u64);
        let status = match below(&mut r, 100) {
            0..55 => "paid",
            55..65 => "pending",
            65..75 => "failed",
            75..88 => "canceled",
            88..95 => "chargebacked",
            95..98 => "refunded",
            _ => "authorized",
        };
        let integration = PROCESSORS[below(&mut r, 4) as usize];
        let tag = r.next_u32();
        let payers_name =
            (below(&mut r, 5) != 0).then(|| NAMES[below(&mut r, 8) as usize].to_owned());
        let link_created = chrono::DateTime::parse_from_rfc3339(&link.created_at)
            .expect("generated timestamps parse")
            .with_timezone(&Utc);
        MkpPayment {
            id: format!("plp_{j:06}{k:04}{:06x}", tag & 0xFF_FFFF),
            payment_link_id: link.id.clone(),
            currency: "EUR",
            amount: link.amount.clone(),
            status: status.to_owned(),
            payers_name,
            integration,
            integration_id: match integration {
                "mollie" => format!("tr_{tag:08x}"),
                "stripe" => format!("pi_{tag:08x}"),
                "paynl" => format!("EX-{:04}-{:04}", tag % 10_000, (tag / 10_000) % 10_000),
                _ => format!("{tag:08X}"),
            },
            created_at: dutch(link_created + Duration::minutes(37 * (k as i64 + 1))),
        }
    }

    /// The random stream of PayPro payment `i` after its first draws, its tag and when it was
    /// created: `i` spacings before the anchor, less up to 5/6 of a spacing, so that each
    /// payment is strictly older than the one before it.
    fn paypro_start(&self, i: usize) -> (ChaCha8Rng, u32, DateTime<Utc>) {
        let mut r = rng(self.seed, 3, i as u64);
        let tag = r.next_u32() & 0xFF_FFFF;
        let spacing = self.paypro_spacing.max(1);
        let jitter = (spacing * 5 / 6).max(1) as u64;
        let created =
            self.anchor - Duration::seconds(i as i64 * spacing + below(&mut r, jitter) as i64);
        (r, tag, created)
    }

    /// When PayPro payment `i` was created.
    pub(crate) fn paypro_created(&self, i: usize) -> DateTime<Utc> {
        self.paypro_start(i).2
    }

    pub(crate) fn paypro_payment(&self, i: usize) -> PayProPayment {
        let (mut r, tag, created) = self.paypro_start(i);
        let amount = if below(&mut r, 97) == 0 {
            1
        } else {
            100 + below(&mut r, 250_000) as i64
        };
        let (state, refunded) = match below(&mut r, 100) {
            0..30 => ("paid", 0),
            30..38 => ("completed", 0),
            38..42 if amount > 1 => ("paid", 1 + (amount - 1) * below(&mut r, 99) as i64 / 100),
            38..44 => ("paid", amount),
            44..47 => ("refunded", amount),
            47..49 => ("chargeback", 0),
            49..50 => ("chargebacked", 0),
            50..55 => ("open", 0),
            55..58 => ("initialized", 0),
            58..61 => ("pending", 0),
            61..63 => ("processing", 0),
            63..73 => ("canceled", 0),
            73..75 => ("cancelled", 0),
            75..85 => ("expired", 0),
            85..95 => ("failed", 0),
            95..98 => ("authorized", 0),
            _ => ("on_hold", 0),
        };
        let paid = matches!(
            state,
            "paid" | "completed" | "refunded" | "chargeback" | "chargebacked"
        );
        let (method, method_name) = METHODS[below(&mut r, 4) as usize];
        let customer =
            (below(&mut r, 10) < 7).then(|| format!("CU{:012X}", r.next_u64() & 0xFFFF_FFFF_FFFF));
        PayProPayment {
            id: format!("PP{tag:06X}{i:010}"),
            kind: "payment",
            amount,
            description: format!("Order #{}", 100_000 + i),
            currency: "EUR",
            pay_method: PayMethod {
                id: method,
                kind: "pay_method",
                name: method_name,
            },
            state: state.to_owned(),
            refunded_amount: refunded,
            return_url: Some("https://shop.sandbox.invalid/thank-you".to_owned()),
            cancel_url: Some("https://shop.sandbox.invalid/cancel".to_owned()),
            metadata: serde_json::Map::new(),
            customer,
            mandate: None,
            subscription: None,
            installment_plan: None,
            locale: if below(&mut r, 4) == 0 { "en" } else { "nl" },
            paid_at: paid.then(|| utc(created + Duration::seconds(30 + below(&mut r, 600) as i64))),
            fail_reason: (state == "failed")
                .then(|| FAIL_REASONS[below(&mut r, 3) as usize].to_owned()),
            created_at: utc(created),
        }
    }

    /// Finds the index of a generated PayPro payment by its id.
    pub(crate) fn paypro_index(&self, id: &str) -> Option<usize> {
        let i: usize = id.get(8..)?.parse().ok()?;
        (id.len() == 18 && i < self.paypro_payments && self.paypro_payment(i).id == id).then_some(i)
    }
}

/// What changed since the sandbox started: new statuses, new payments, new links.
#[derive(Debug, Default)]
pub(crate) struct Overlay {
    pub(crate) mkp_link_status: HashMap<String, String>,
    pub(crate) mkp_payment_status: HashMap<String, String>,
    /// Payments added to a link, after its generated ones.
    pub(crate) mkp_added: HashMap<String, Vec<MkpPayment>>,
    pub(crate) paypro_state: HashMap<String, (String, i64)>,
    /// Amounts (minor units) changed after the payment was made.
    pub(crate) paypro_amount: HashMap<String, i64>,
    /// Payments inserted since the start, oldest first; they list before the generated ones.
    pub(crate) paypro_inserted: Vec<PayProPayment>,
    /// When a payment paid at run time was paid.
    pub(crate) paypro_paid_at: HashMap<String, String>,
    /// Events since the start, oldest first; they list before the generated ones.
    pub(crate) paypro_events: Vec<PayProEvent>,
    /// Refunds since the start, oldest first; they list before the generated ones.
    pub(crate) paypro_refunds: Vec<PayProRefund>,
    /// Chargebacks since the start, oldest first; they list before the generated ones.
    pub(crate) paypro_chargebacks: Vec<PayProChargeback>,
    /// Payouts since the start, oldest first; they list before the generated ones.
    pub(crate) paypro_payouts: Vec<PayProPayout>,
    /// Descriptions a test gave PayPro payments, by payment id.
    pub(crate) paypro_description: HashMap<String, String>,
    /// Names a test gave PayPro customers, by customer id.
    pub(crate) paypro_customer_name: HashMap<String, String>,
    /// Descriptions a test gave MKP links, by link id.
    pub(crate) mkp_link_description: HashMap<String, String>,
    /// Payer names a test gave MKP payments, by payment id.
    pub(crate) mkp_payers_name: HashMap<String, String>,
}

/// The data set: generator plus overlay.
#[derive(Debug)]
pub(crate) struct Data {
    pub(crate) generator: Generator,
    pub(crate) overlay: Overlay,
    /// Where changes are announced as webhooks, when they are.
    pub(crate) outbox: Option<crate::webhooks::Outbox>,
}

impl Data {
    pub(crate) fn link_count(&self) -> usize {
        self.generator.mkp_links
    }

    pub(crate) fn link(&self, j: usize) -> MkpLink {
        let mut link = self.generator.mkp_link(j);
        if let Some(status) = self.overlay.mkp_link_status.get(&link.id) {
            link.status = status.clone();
            if status != "open" {
                link.checkout_url = None;
            }
        }
        if let Some(description) = self.overlay.mkp_link_description.get(&link.id) {
            link.description = Some(description.clone());
        }
        link
    }

    pub(crate) fn link_payment_count(&self, j: usize, link_id: &str) -> usize {
        self.generator.mkp_payment_count(j)
            + self.overlay.mkp_added.get(link_id).map_or(0, Vec::len)
    }

    /// Payment `k` of link `j` (generated ones first, then added ones).
    pub(crate) fn link_payment(&self, link: &MkpLink, j: usize, k: usize) -> MkpPayment {
        let generated = self.generator.mkp_payment_count(j);
        let mut payment = if k < generated {
            self.generator.mkp_payment(link, j, k)
        } else {
            self.overlay.mkp_added[&link.id][k - generated].clone()
        };
        if let Some(status) = self.overlay.mkp_payment_status.get(&payment.id) {
            payment.status = status.clone();
        }
        if let Some(name) = self.overlay.mkp_payers_name.get(&payment.id) {
            payment.payers_name = Some(name.clone());
        }
        payment
    }

    pub(crate) fn paypro_count(&self) -> usize {
        self.overlay.paypro_inserted.len() + self.generator.paypro_payments
    }

    /// The payment at `position` in the newest-first listing.
    pub(crate) fn paypro_at(&self, position: usize) -> PayProPayment {
        let inserted = &self.overlay.paypro_inserted;
        let mut payment = if position < inserted.len() {
            inserted[inserted.len() - 1 - position].clone()
        } else {
            self.generator.paypro_payment(position - inserted.len())
        };
        if let Some((state, refunded)) = self.overlay.paypro_state.get(&payment.id) {
            payment.state = state.clone();
            payment.refunded_amount = *refunded;
        }
        if let Some(amount) = self.overlay.paypro_amount.get(&payment.id) {
            payment.amount = *amount;
        }
        if let Some(paid_at) = self.overlay.paypro_paid_at.get(&payment.id) {
            payment.paid_at = Some(paid_at.clone());
        }
        self.with_paypro_text(&mut payment);
        payment
    }

    /// Writes the description a test gave `payment`, if any, into it.
    pub(crate) fn with_paypro_text(&self, payment: &mut PayProPayment) {
        if let Some(description) = self.overlay.paypro_description.get(&payment.id) {
            payment.description = description.clone();
        }
    }

    /// The listing position of the payment with `id`.
    pub(crate) fn paypro_position(&self, id: &str) -> Option<usize> {
        let inserted = &self.overlay.paypro_inserted;
        if let Some(q) = inserted.iter().position(|p| p.id == id) {
            return Some(inserted.len() - 1 - q);
        }
        self.generator.paypro_index(id).map(|i| inserted.len() + i)
    }

    /// Inserts a new payment at the top of the PayPro listing, created now, with the id `id`
    /// (verbatim), or `PPNEW…` for `None`.
    pub(crate) fn insert_paypro(&mut self, id: Option<&str>, now: DateTime<Utc>) -> String {
        let n = self.overlay.paypro_inserted.len();
        let mut payment = self
            .generator
            .paypro_payment(n % self.generator.paypro_payments.max(1));
        payment.id = id.map_or_else(|| format!("PPNEW{:013}", n), str::to_owned);
        payment.state = "open".to_owned();
        payment.refunded_amount = 0;
        payment.paid_at = None;
        payment.fail_reason = None;
        payment.created_at = utc(now);
        self.overlay.paypro_inserted.push(payment.clone());
        self.add_paypro_event("payment.created", PayProPayload::Payment(payment), now);
        self.overlay.paypro_inserted[n].id.clone()
    }

    /// Adds a pending payment to link `link_id`, created now.
    pub(crate) fn add_mkp_payment(&mut self, link_id: &str, now: DateTime<Utc>) -> Option<String> {
        let j = self.generator.mkp_link_index(link_id)?;
        let link = self.link(j);
        let k = self.link_payment_count(j, link_id);
        let mut payment = self.generator.mkp_payment(&link, j, k);
        payment.id = format!("plp_new{:06}{:04}", j, k);
        payment.status = "pending".to_owned();
        payment.created_at = dutch(now);
        let id = payment.id.clone();
        self.overlay
            .mkp_added
            .entry(link_id.to_owned())
            .or_default()
            .push(payment);
        Some(id)
    }
}
