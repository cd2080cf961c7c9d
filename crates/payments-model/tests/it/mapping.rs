//! Reading provider pages: records whose bytes are not UTF-8, and the tolerant readers.

use payments_model::{MapError, PageText, Rejected, tolerant};
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, deserialize_with = "tolerant::null_as_empty")]
    data: Vec<&'a RawValue>,
    #[serde(default, deserialize_with = "tolerant::link")]
    next: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Record {
    id: String,
    name: String,
}

fn decode(body: &[u8]) -> (Vec<String>, Vec<Rejected>) {
    let text = PageText::new(body);
    let page: Envelope<'_> = text.parse().expect("the envelope decodes");
    text.decode_records(&page.data, |r: Record| Ok::<_, MapError>(r.id))
}

#[test]
fn a_record_whose_bytes_are_not_utf8_is_set_aside_named_with_its_bytes_escaped_and_the_rest_kept() {
    let mut body = br#"{"data": [{"id": "r1", "name": "Jos"}, {"id": "r2", "name": "Ren"#.to_vec();
    let offset = body.len();
    body.extend_from_slice(
        b"\xE9 \xFF\xFE\", \"extra\": 1}, {\"id\": \"r3\", \"name\": \"Zo\xC3\xAB\"}]}",
    );
    let (kept, rejected) = decode(&body);
    assert_eq!(
        kept,
        ["r1", "r3"],
        "the other records are kept, valid UTF-8 included"
    );
    let [r2] = rejected.as_slice() else {
        panic!("{rejected:?}")
    };
    assert_eq!(r2.source_id.as_deref(), Some("r2"));
    assert_eq!(
        r2.reason,
        format!(
            "record `r2`: field `name`: byte 0xE9 at offset {offset} of the page body is not valid UTF-8 (and 2 more bytes)"
        )
    );
    assert_eq!(
        r2.raw, r#"{"id": "r2", "name": "Ren\xE9 \xFF\xFE", "extra": 1}"#,
        "the bytes are kept, each invalid one as \\xNN"
    );
}

#[test]
fn a_record_whose_id_holds_the_bad_bytes_is_set_aside_without_an_id() {
    let body =
        b"{\"data\": [{\"id\": \"r\xE91\", \"name\": \"x\"}, {\"id\": \"r2\", \"name\": \"y\"}]}";
    let (kept, rejected) = decode(body);
    assert_eq!(kept, ["r2"]);
    assert_eq!(rejected[0].source_id, None);
    assert!(
        rejected[0]
            .reason
            .starts_with("record `<no id>`: field `id`: byte 0xE9 at offset 19"),
        "{}",
        rejected[0].reason
    );
    assert_eq!(rejected[0].raw, r#"{"id": "r\xE91", "name": "x"}"#);
}

#[test]
fn bad_bytes_in_a_nested_field_name_the_path() {
    let body = b"{\"data\": [{\"id\": \"r1\", \"name\": \"x\", \"meta\": {\"tags\": [\"ok\", \"b\xE4d\"]}}]}";
    let text = PageText::new(body);
    let page: Envelope<'_> = text.parse().unwrap();
    let (_, rejected) = text.decode_records(&page.data, |r: Record| Ok::<_, MapError>(r.id));
    assert!(
        rejected[0]
            .reason
            .starts_with("record `r1`: field `meta.tags[1]`:"),
        "{}",
        rejected[0].reason
    );
}

#[test]
fn a_clean_page_is_borrowed_and_bad_bytes_in_the_envelope_are_detectable() {
    let clean = br#"{"data": [{"id": "r1", "name": "x"}], "next": "?page=2"}"#;
    let text = PageText::new(clean);
    assert!(text.is_valid_utf8());
    assert_eq!(text.as_str().as_bytes(), clean);
    let page: Envelope<'_> = text.parse().unwrap();
    assert!(!text.is_damaged(page.next.as_deref().unwrap()));

    let damaged = b"{\"data\": [], \"next\": \"?page=\xFF\"}";
    let text = PageText::new(damaged);
    let page: Envelope<'_> = text.parse().unwrap();
    assert!(text.is_damaged(page.next.as_deref().unwrap()));
}

#[test]
fn envelopes_read_null_data_and_every_form_of_next_link() {
    #[derive(Deserialize, Debug)]
    struct Counts {
        #[serde(default, deserialize_with = "tolerant::count")]
        per_page: Option<u64>,
        #[serde(default, deserialize_with = "tolerant::text")]
        path: Option<String>,
    }
    let count = |json: &str| serde_json::from_str::<Counts>(json).unwrap().per_page;
    let path = |json: &str| serde_json::from_str::<Counts>(json).unwrap().path;
    assert_eq!(
        path(r#"{"path": "https://x/p"}"#).as_deref(),
        Some("https://x/p")
    );
    assert_eq!(path(r#"{"path": ["https://x/p"]}"#), None);
    assert_eq!(count(r#"{"per_page": 15}"#), Some(15));
    assert_eq!(count(r#"{"per_page": "15"}"#), Some(15));
    assert_eq!(count(r#"{"per_page": " 15 "}"#), Some(15));
    assert_eq!(count(r#"{}"#), None);
    assert_eq!(count(r#"{"per_page": null}"#), None);
    assert_eq!(count(r#"{"per_page": "fifteen"}"#), None);
    assert_eq!(count(r#"{"per_page": {"n": [1]}, "path": 3}"#), None);

    let next = |json: &str| {
        serde_json::from_str::<Envelope<'_>>(json)
            .map(|e| e.next)
            .map_err(|e| e.to_string())
    };
    assert_eq!(next(r#"{"data": null}"#), Ok(None));
    assert_eq!(
        next(r#"{"data": [], "next": "https://x/p?page=2"}"#),
        Ok(Some("https://x/p?page=2".into()))
    );
    assert_eq!(
        next(r#"{"data": [], "next": {"href": "/p?page=2"}}"#),
        Ok(Some("/p?page=2".into()))
    );
    for none in [r#""""#, "false", "null", r#""  ""#] {
        assert_eq!(
            next(&format!(r#"{{"data": [], "next": {none}}}"#)),
            Ok(None),
            "{none}"
        );
    }
    assert!(
        next(r#"{"data": [], "next": 2}"#).is_err(),
        "a number is no link"
    );
    assert!(
        serde_json::from_str::<Envelope<'_>>(r#"{"next": null}"#).is_err(),
        "no data at all is not the envelope"
    );
}

#[test]
fn php_empty_objects_written_as_lists_read_as_empty() {
    #[derive(Deserialize, Default, Debug, PartialEq)]
    struct Links {
        next: Option<String>,
    }
    #[derive(Deserialize, Debug)]
    struct List {
        #[serde(default, deserialize_with = "tolerant::empty_list_as_default")]
        links: Links,
    }
    let links = |json: &str| serde_json::from_str::<List>(json).map(|l| l.links);
    assert_eq!(links(r#"{"links": []}"#).unwrap(), Links::default());
    assert_eq!(links(r#"{"links": null}"#).unwrap(), Links::default());
    assert_eq!(
        links(r#"{"links": {"next": "/p"}}"#)
            .unwrap()
            .next
            .as_deref(),
        Some("/p")
    );
    assert!(links(r#"{"links": ["/p"]}"#).is_err());
}

#[test]
fn amounts_keep_their_literal_text_and_never_pass_through_a_float() {
    #[derive(Deserialize)]
    struct Amount {
        #[serde(deserialize_with = "tolerant::literal")]
        amount: String,
    }
    let literal = |json: &str| {
        serde_json::from_str::<Amount>(json)
            .map(|a| a.amount)
            .map_err(|e| e.to_string())
    };
    assert_eq!(literal(r#"{"amount": "12.95"}"#).unwrap(), "12.95");
    assert_eq!(literal(r#"{"amount": " 12.95 "}"#).unwrap(), " 12.95 ");
    assert_eq!(literal(r#"{"amount": "1\u0032.95"}"#).unwrap(), "12.95");
    assert_eq!(literal(r#"{"amount": 12.95}"#).unwrap(), "12.95");
    // Through an f64 these would read 0.30000000000000004 and 1e22-ish digits.
    assert_eq!(
        literal(r#"{"amount": 0.30000000000000001}"#).unwrap(),
        "0.30000000000000001"
    );
    assert_eq!(
        literal(r#"{"amount": 12345678901234567890.12}"#).unwrap(),
        "12345678901234567890.12"
    );
    assert_eq!(literal(r#"{"amount": 1e3}"#).unwrap(), "1e3");
    assert!(
        literal(r#"{"amount": true}"#)
            .unwrap_err()
            .contains("not an amount")
    );
    assert!(literal(r#"{"amount": null}"#).is_err());
}

#[test]
fn minor_units_are_whole_integers_or_digit_strings() {
    #[derive(Deserialize)]
    struct Cents {
        #[serde(deserialize_with = "tolerant::minor_units")]
        amount: i64,
        #[serde(default, deserialize_with = "tolerant::optional_minor_units")]
        refunded: Option<i64>,
    }
    let cents = |json: &str| {
        serde_json::from_str::<Cents>(json)
            .map(|c| (c.amount, c.refunded))
            .map_err(|e| e.to_string())
    };
    assert_eq!(cents(r#"{"amount": 1295}"#), Ok((1295, None)));
    assert_eq!(
        cents(r#"{"amount": "1295", "refunded": "0"}"#),
        Ok((1295, Some(0)))
    );
    assert_eq!(
        cents(r#"{"amount": " 1295 ", "refunded": null}"#),
        Ok((1295, None))
    );
    assert_eq!(cents(r#"{"amount": "-5"}"#), Ok((-5, None)));
    for bad in [
        r#""12.95""#,
        r#""1,295""#,
        r#""1.295""#,
        "12.5",
        "1e3",
        r#""""#,
        r#""+5""#,
        "true",
    ] {
        let err = cents(&format!(r#"{{"amount": {bad}}}"#)).unwrap_err();
        assert!(
            err.contains("whole number of minor units") || err.contains("invalid type"),
            "{bad}: {err}"
        );
    }
    assert!(
        cents(r#"{"amount": 9223372036854775808}"#)
            .unwrap_err()
            .contains("too large")
    );
    // Values decoded through serde_json::Value still work (no float is involved in integers).
    let value = serde_json::json!({"amount": "1295", "refunded": 5});
    let decoded: Cents = serde_json::from_value(value).unwrap();
    assert_eq!((decoded.amount, decoded.refunded), (1295, Some(5)));
}
