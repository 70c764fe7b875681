//! The library against B2's answers in the shapes real servers send (issue 21): nullable
//! fields null, optional ones absent, unknown fields, unknown enum values, v1's `size`,
//! `Retry-After` as a date. The emulator rewrites its answers (`Emulator::set_variants`);
//! every operation, through the C ABI, must end as it does under canonical answers: same
//! statuses, counts, bytes, SHA1s, usage, and the same versions left on B2.
//!
//! One test per variant kind runs the whole journey under that shape on every call, so a
//! failure names the shape and lists the operations it broke with the library's error;
//! the property test mixes shapes per call with a fixed seed.

mod common;
#[path = "answer_shapes/journey.rs"]
mod journey;

use std::sync::OnceLock;

use b2_emulator::{Variant, VariantRule};
use journey::{Options, Step};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use serde_json::json;

/// The B2 calls the library makes.
const CALLS: &[&str] = &[
    "b2_authorize_account",
    "b2_list_buckets",
    "b2_get_upload_url",
    "b2_upload_file",
    "b2_start_large_file",
    "b2_get_upload_part_url",
    "b2_upload_part",
    "b2_finish_large_file",
    "b2_cancel_large_file",
    "b2_list_unfinished_large_files",
    "b2_list_parts",
    "b2_list_file_names",
    "b2_list_file_versions",
    "b2_hide_file",
    "b2_delete_file_version",
    "b2_get_file_info",
    "b2_update_file_retention",
    "b2_download_file_by_name",
    "b2_download_file_by_id",
];

/// Both journeys on one emulator answering by `rules`, and the byte counters at the end.
fn run(rules: &[VariantRule], options: Options) -> Vec<Step> {
    let emu = journey::journey_emulator();
    for rule in rules {
        emu.set_variants(rule.clone());
    }
    let dir = tempfile::tempdir().unwrap();
    journey::local_files(dir.path());
    let mut steps = journey::plain(&emu, dir.path(), options);
    steps.extend(journey::locked(&emu, dir.path()));
    let mut bytes = journey::bytes(&emu);
    bytes["status"] = json!(0);
    steps.push(Step {
        name: "bytes moved",
        outcome: bytes,
        response: json!({}),
    });
    steps
}

/// The journey under canonical answers, with the same scripted faults (a 503 drains one
/// upload body more; a lost answer may cost a call).
fn canonical(options: Options) -> &'static [Step] {
    static CANONICAL: [OnceLock<Vec<Step>>; 4] = [const { OnceLock::new() }; 4];
    let once = &CANONICAL[usize::from(options.retry_after) * 2 + usize::from(options.lost_answers)];
    once.get_or_init(|| {
        let steps = run(&[], options);
        // The reference itself must be a good night, or every comparison is moot.
        for s in &steps {
            let ok = s.outcome["status"] == 0
                || (s.name == "upload cut off" && s.outcome["status"] == common::REMOTE)
                || (s.name == "locked: delete refused"
                    && s.outcome["status"] == common::lock::LOCKED);
            assert!(ok, "canonical {}: {} {}", s.name, s.outcome, s.response);
        }
        steps
    })
}

/// Every call answers in `variants`' shapes; the journey must end as under canonical ones.
fn assert_same_under(variants: &[Variant], seed: u64, options: Options) {
    let want = canonical(options);
    let got = run(&[VariantRule::all_calls(variants, seed)], options);
    let diffs = journey::differences(want, &got);
    assert!(
        diffs.is_empty(),
        "under {variants:?} (seed {seed}) {} operation(s) differ:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

#[test]
fn null_fields_leave_every_operation_as_it_was() {
    assert_same_under(&[Variant::Null], 1, Options::default());
}

#[test]
fn absent_fields_leave_every_operation_as_it_was() {
    assert_same_under(&[Variant::Absent], 2, Options::default());
}

#[test]
fn unknown_extra_fields_leave_every_operation_as_it_was() {
    assert_same_under(&[Variant::Extra], 3, Options::default());
}

#[test]
fn unknown_enum_values_leave_every_operation_as_it_was() {
    assert_same_under(&[Variant::UnknownEnum], 4, Options::default());
}

#[test]
fn v1_size_in_listings_leaves_every_operation_as_it_was() {
    assert_same_under(&[Variant::V1Size], 5, Options::default());
}

#[test]
fn a_retry_after_date_is_waited_for_and_changes_nothing_else() {
    let emu = journey::journey_emulator();
    emu.set_variants(VariantRule::all_calls(&[Variant::RetryAfterDate], 6));
    let dir = tempfile::tempdir().unwrap();
    journey::local_files(dir.path());
    let steps = journey::plain(
        &emu,
        dir.path(),
        Options {
            retry_after: true,
            ..Options::default()
        },
    );
    let diffs = journey::differences(
        &canonical(Options {
            retry_after: true,
            ..Options::default()
        })[..steps.len()],
        &steps,
    );
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    // The 503 said "not before this date" (at least one second on): the retry waited.
    // Validate's probe is the first upload; the 503 meets the second, retried as the third.
    let arrivals = &emu.counts().arrivals_ms["b2_upload_file"];
    let waited = arrivals[2] - arrivals[1];
    assert!(waited >= 900, "retried after {waited} ms: {arrivals:?}");
}

#[test]
fn lost_answers_are_settled_under_each_shape() {
    let options = Options {
        lost_answers: true,
        ..Options::default()
    };
    let want = canonical(options);
    let mut diffs = Vec::new();
    for (i, variant) in Variant::ALL.into_iter().enumerate() {
        let got = run(
            &[VariantRule::all_calls(&[variant], 10 + i as u64)],
            options,
        );
        for d in journey::differences(want, &got) {
            diffs.push(format!("{}: {d}", variant.name()));
        }
    }
    assert!(
        diffs.is_empty(),
        "after lost answers, {} operation(s) differ:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

fn rules_strategy() -> impl Strategy<Value = Vec<VariantRule>> {
    prop::collection::vec((0u8..64, any::<u64>()), CALLS.len()).prop_map(|picks| {
        CALLS
            .iter()
            .zip(picks)
            .filter(|(_, (mask, _))| *mask != 0)
            .map(|(call, (mask, seed))| VariantRule {
                call: call.to_string(),
                variants: Variant::ALL
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, v)| v)
                    .collect(),
                seed,
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(21),
        max_shrink_iters: 8,
        ..ProptestConfig::default()
    })]

    /// Any mix of shapes, chosen per call, leaves every operation as it was.
    #[test]
    fn any_mix_of_answer_shapes_per_call_changes_no_outcome(
        rules in rules_strategy(),
        retry_after in prop::bool::weighted(0.25),
        lost_answers in prop::bool::weighted(0.25),
    ) {
        let options = Options { retry_after, lost_answers };
        let got = run(&rules, options);
        let diffs = journey::differences(canonical(options), &got);
        let shown: Vec<String> = rules
            .iter()
            .map(|r| format!("{}={:?}@{}", r.call, r.variants, r.seed))
            .collect();
        prop_assert!(
            diffs.is_empty(),
            "under {}:\n{}",
            shown.join(" "),
            diffs.join("\n")
        );
    }
}
