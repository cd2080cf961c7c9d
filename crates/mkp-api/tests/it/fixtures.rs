//! Every MKP fixture page mapped to unified records, as reviewed snapshots.

use std::collections::HashMap;
use std::path::Path;

use mkp_api::{SimplePage, decode_payments_page, map_links, map_payments};
use payments_model::{Group, Payment, Rejected};
use serde::Serialize;

fn read_page(path: &Path) -> SimplePage {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The links of every links fixture (curated and generated), by id, so payment pages can carry
/// their link's description.
fn known_links() -> HashMap<String, Group> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/mkp");
    let mut links = HashMap::new();
    for dir in [root.clone(), root.join("generated")] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap();
            if name.starts_with("links-") {
                for group in map_links(&read_page(&path).data).0 {
                    links.insert(group.id.clone(), group);
                }
            }
        }
    }
    links
}

/// A set-aside record in a snapshot: its id and reason (the raw JSON is asserted separately).
#[derive(Serialize)]
struct Reason<'a> {
    source_id: Option<&'a str>,
    reason: &'a str,
}

fn reasons(rejected: &[Rejected]) -> Vec<Reason<'_>> {
    rejected
        .iter()
        .map(|r| Reason {
            source_id: r.source_id.as_deref(),
            reason: &r.reason,
        })
        .collect()
}

/// Every set-aside record keeps the provider's JSON byte for byte.
fn assert_raw_kept(page: &SimplePage, rejected: &[Rejected]) {
    for r in rejected {
        assert!(
            page.data.iter().any(|raw| raw.get() == r.raw),
            "the raw record of {:?} was not kept as sent",
            r.source_id
        );
    }
}

#[test]
fn link_pages_map_to_groups() {
    #[derive(Serialize)]
    struct Snapshot<'a> {
        next_page_url: Option<&'a str>,
        groups: Vec<Group>,
        rejected: Vec<Reason<'a>>,
    }
    insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false }, {
        // One glob per folder: `{,generated/}…` matched only the generated pages, so the
        // curated ones (every bad record) went unchecked.
        for fixtures in ["../../../../fixtures/mkp", "../../../../fixtures/mkp/generated"] {
            insta::glob!(fixtures, "links-*.json", |path| {
                let page = read_page(path);
                let (groups, rejected) = map_links(&page.data);
                assert_eq!(groups.len() + rejected.len(), page.data.len(), "a link went missing");
                assert_raw_kept(&page, &rejected);
                insta::assert_json_snapshot!(Snapshot {
                    next_page_url: page.next_page_url.as_deref(),
                    groups,
                    rejected: reasons(&rejected),
                });
            });
        }
    });
}

#[test]
fn payment_pages_map_to_unified_payments() {
    #[derive(Serialize)]
    struct Snapshot<'a> {
        link_known: bool,
        next_page_url: Option<&'a str>,
        payments: &'a [Payment],
        rejected: Vec<Reason<'a>>,
    }
    let links = known_links();
    insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false }, {
        // One glob per folder: `{,generated/}…` matched only the generated pages, so the
        // curated ones (every bad record) went unchecked.
        for fixtures in ["../../../../fixtures/mkp", "../../../../fixtures/mkp/generated"] {
            insta::glob!(fixtures, "payments-*.json", |path| {
                let name = path.file_name().unwrap().to_str().unwrap();
                let link_id = name.strip_prefix("payments-").unwrap().split("-page").next().unwrap();
                let page = read_page(path);
                let link = links.get(link_id);
                let mapped = map_payments(&page.data, link);
                let (next, fast) = decode_payments_page(&std::fs::read(path).unwrap(), link).unwrap();
                assert_eq!(fast, mapped, "the one-pass decode must equal the record-by-record one");
                assert_eq!(next, page.next_page_url);
                assert_eq!(
                    mapped.payments.len() + mapped.rejected.len(),
                    page.data.len(),
                    "a record went missing"
                );
                assert_raw_kept(&page, &mapped.rejected);
                insta::assert_json_snapshot!(Snapshot {
                    link_known: link.is_some(),
                    next_page_url: page.next_page_url.as_deref(),
                    payments: &mapped.payments,
                    rejected: reasons(&mapped.rejected),
                });
            });
        }
    });
}
