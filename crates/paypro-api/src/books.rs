//! What moves PayPro's balance besides payments: payouts (`GET /payouts`, `/payouts/{id}`),
//! the balance itself (`GET /balances`), and refunds, chargebacks and payouts as the model's
//! [`BookRecord`]s.
//!
//! The shapes of payouts and balances are partly unconfirmed (PROVIDERS.md), so they are read
//! tolerantly (see [`PayProPayout`]); a record that still cannot be mapped is set aside whole
//! with a reason naming the field, never an error for the whole page.

use payments_model::chrono::{DateTime, FixedOffset};
use payments_model::{
    Balance, BankAccount, BookKind, BookRecord, Currency, MapError, Money, PageText, Rejected,
    Source,
};
use serde::Serialize;
use serde::de::Error as _;
use serde_json::value::RawValue;

use crate::feed::{
    Chargeback, DecodedPage, Refund, decode_list, optional_time, optional_timestamp, required_time,
    timestamp,
};
use crate::wire::{PayProBalance, PayProPayout, PayoutFee};

/// A payout from the PayPro balance to the merchant's bank account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Payout {
    /// PayPro's id of the payout (`PO…`).
    pub id: String,
    /// What was transferred to the bank account, exact, in its currency.
    pub amount: Money,
    /// The fee withheld from the balance with it, when PayPro says (in the payout's currency).
    pub fee: Option<Money>,
    /// The VAT on the fee, withheld with it, when PayPro says (in the payout's currency).
    pub fee_vat: Option<Money>,
    /// The state word, as sent (`created`, `approved`, `paid`, `rejected`, `failed`;
    /// open-ended).
    pub state: String,
    /// Where the money went, when said.
    pub bank_account: Option<BankAccount>,
    /// When the payout was made, with the provider's offset kept.
    #[serde(serialize_with = "timestamp")]
    pub created_at: DateTime<FixedOffset>,
    /// When it was paid, when it has been.
    #[serde(serialize_with = "optional_timestamp")]
    pub paid_at: Option<DateTime<FixedOffset>>,
}

impl Payout {
    /// The unified id of the payout (`paypro:PO…`), as [`BookRecord::id`] has it.
    pub fn unified_id(&self) -> String {
        Source::PayPro.payment_id(&self.id)
    }

    /// The payout as a [`BookRecord`]: `settled_at` is `paid_at`.
    pub fn into_record(self) -> BookRecord {
        BookRecord {
            kind: BookKind::Payout,
            id: self.unified_id(),
            source: Source::PayPro,
            source_id: self.id,
            payment_id: None,
            state: self.state,
            amount: self.amount,
            fee: self.fee,
            fee_vat: self.fee_vat,
            created_at: self.created_at,
            settled_at: self.paid_at,
            description: None,
            reason: None,
            bank_account: self.bank_account,
        }
    }
}

impl Refund {
    /// The refund as a [`BookRecord`]: `settled_at` is `refunded_at`, `payment_id` the
    /// refunded payment's unified id.
    pub fn into_record(self) -> BookRecord {
        BookRecord {
            kind: BookKind::Refund,
            id: Source::PayPro.payment_id(&self.id),
            source: Source::PayPro,
            payment_id: Some(self.unified_payment_id()),
            source_id: self.id,
            state: self.state,
            amount: self.amount,
            fee: None,
            fee_vat: None,
            created_at: self.created_at,
            settled_at: self.refunded_at,
            description: self.description,
            reason: self.reason,
            bank_account: None,
        }
    }
}

impl Chargeback {
    /// The chargeback as a [`BookRecord`]: `settled_at` is `charged_back_at`, `reason` the
    /// bank's code, `payment_id` the charged-back payment's unified id.
    pub fn into_record(self) -> BookRecord {
        BookRecord {
            kind: BookKind::Chargeback,
            id: Source::PayPro.payment_id(&self.id),
            source: Source::PayPro,
            payment_id: Some(self.unified_payment_id()),
            source_id: self.id,
            state: self.state,
            amount: self.amount,
            fee: None,
            fee_vat: None,
            created_at: self.created_at,
            settled_at: self.charged_back_at,
            description: self.description,
            reason: self.reason,
            bank_account: None,
        }
    }
}

impl PayProPayout {
    /// Maps this payout. Refused, naming the field: an unknown currency, a negative amount, a
    /// negative fee or VAT, a fee or VAT in another currency than the payout's (`fee_currency`,
    /// or the fee's own `currency`), a missing or offset-less `created_at`, an offset-less
    /// `paid_at`. A missing or null fee is `None`; a bank account without IBAN or name is none.
    pub fn to_payout(self) -> Result<Payout, MapError> {
        let fail = |field: &str, problem: String| MapError::new(&self.id, field, problem);
        let currency =
            Currency::from_code(&self.currency).map_err(|e| fail("currency", e.to_string()))?;
        if self.amount < 0 {
            return Err(fail("amount", format!("{} is negative", self.amount)));
        }
        let amount = Money::from_minor(self.amount, currency);
        let fee_money = |fee: &Option<PayoutFee>, field: &str| -> Result<Option<Money>, MapError> {
            let Some(fee) = fee else {
                return Ok(None);
            };
            if fee.minor < 0 {
                return Err(fail(field, format!("{} is negative", fee.minor)));
            }
            let (named, code) = match (&fee.currency, &self.fee_currency) {
                (Some(code), _) => (format!("{field}.currency"), Some(code)),
                (None, Some(code)) => ("fee_currency".to_owned(), Some(code)),
                (None, None) => (String::new(), None),
            };
            if let Some(code) = code {
                let own =
                    Currency::from_code(code.trim()).map_err(|e| fail(&named, e.to_string()))?;
                if own != currency {
                    return Err(fail(
                        &named,
                        format!(
                            "the fee is in {}, the payout in {}: a fee in another currency than the payout's is refused",
                            own.code(),
                            currency.code()
                        ),
                    ));
                }
            }
            Ok(Some(Money::from_minor(fee.minor, currency)))
        };
        let fee = fee_money(&self.fee_amount, "fee_amount")?;
        let fee_vat = fee_money(&self.fee_vat_amount, "fee_vat_amount")?;
        let created_at =
            required_time(self.created_at.as_deref()).map_err(|p| fail("created_at", p))?;
        let paid_at = optional_time(self.paid_at.as_deref()).map_err(|p| fail("paid_at", p))?;
        let bank_account = self
            .bank_account
            .filter(|account| account.iban.is_some() || account.name.is_some())
            .map(|account| BankAccount {
                iban: account.iban,
                name: account.name,
            });
        Ok(Payout {
            id: self.id,
            amount,
            fee,
            fee_vat,
            state: self.state,
            bank_account,
            created_at,
            paid_at,
        })
    }
}

impl PayProBalance {
    /// Maps this balance. Refused, naming the field: an unknown currency. A balance may be
    /// below zero; a missing or null `pending_amount` is `None`.
    pub fn to_balance(self) -> Result<Balance, MapError> {
        let record = format!("balance {}", self.currency);
        let currency = Currency::from_code(&self.currency)
            .map_err(|e| MapError::new(&record, "currency", e.to_string()))?;
        Ok(Balance {
            amount: Money::from_minor(self.amount, currency),
            pending: self
                .pending_amount
                .map(|pending| Money::from_minor(pending, currency)),
        })
    }
}

/// Decodes a page of `GET /payouts` and maps each payout on its own: one that cannot be mapped
/// (also one whose bytes are not valid UTF-8) is set aside whole with its reason, naming the
/// payout and the field (`fee_amount`), and the rest of the page is kept.
pub fn decode_payouts_page(body: &[u8]) -> Result<DecodedPage<Payout>, serde_json::Error> {
    decode_list(body, PayProPayout::to_payout)
}

/// Decodes the body of `GET /payouts/{id}` (one payout object) and maps it: the payout, or the
/// record set aside whole with its reason.
pub fn decode_payout(body: &[u8]) -> Result<Result<Payout, Rejected>, serde_json::Error> {
    let text = PageText::new(body);
    let raw: &RawValue = text.parse()?;
    let (mut payouts, mut rejected) =
        text.decode_records(std::slice::from_ref(&raw), PayProPayout::to_payout);
    match (payouts.pop(), rejected.pop()) {
        (Some(payout), _) => Ok(Ok(payout)),
        (None, Some(rejected)) => Ok(Err(rejected)),
        (None, None) => Err(serde_json::Error::custom(
            "the payout was neither mapped nor set aside",
        )),
    }
}

/// Decodes the body of `GET /balances` (the list envelope of balances) and maps each balance on
/// its own: one that cannot be mapped is set aside whole with its reason, the others kept.
pub fn decode_balances(body: &[u8]) -> Result<DecodedPage<Balance>, serde_json::Error> {
    decode_list(body, PayProBalance::to_balance)
}
