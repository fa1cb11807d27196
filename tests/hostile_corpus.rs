//! Every line of a hostile corpus ends counted, de-duplicated or dead-lettered, for the reason
//! written next to it in `hostile.expected.json`.

mod common;

use std::path::Path;

use common::cli::Cli;
use social_reward::events::{Intake, Outcome, SourcePosition, Timestamp, Validator};
use social_reward::sources::file::JsonlReader;

const CORPUS: &str = "tests/data/hostile.jsonl";
const EXPECTED: &str = "tests/data/hostile.expected.json";
const NOW: &str = "2026-06-01T00:00:00Z";

fn expected() -> Vec<String> {
    serde_json::from_str(&std::fs::read_to_string(EXPECTED).unwrap()).unwrap()
}

#[test]
fn each_hostile_line_gets_its_expected_outcome() {
    let validator =
        Validator::new(Default::default(), Timestamp::parse_rfc3339(NOW).unwrap()).unwrap();
    let mut intake = Intake::new(validator, 6.0);
    let mut reader = JsonlReader::open(Path::new(CORPUS), 1 << 20).unwrap();
    let mut got = Vec::new();
    while let Some(record) = reader.next_record().unwrap() {
        let line = record.line;
        let outcome = intake.accept(record.payload, record.raw_len, || SourcePosition::File {
            path: CORPUS.into(),
            line,
        });
        got.push(match outcome {
            Outcome::Valid(_) => "valid".to_owned(),
            Outcome::Duplicate => "duplicate".to_owned(),
            Outcome::Dead(letter) => {
                assert_eq!(letter.position.to_string(), format!("{CORPUS}:{line}"));
                assert!(letter.raw.len() <= 64 * 1024, "kept raw bytes are capped");
                letter.reason.as_str().to_owned()
            }
        });
    }
    let expected = expected();
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "line {}", i + 1);
    }
    assert_eq!(got.len(), expected.len());
    assert!(intake.counts().is_balanced());
}

/// Batch curation takes records in runs (`accept_run`, which parses a run before
/// de-duplicating it); the stream takes them one by one. Both must decide alike.
#[test]
fn runs_of_records_are_decided_as_one_by_one() {
    let now = Timestamp::parse_rfc3339(NOW).unwrap();
    let validator = || Validator::new(Default::default(), now).unwrap();
    let (mut single, mut runs) = (Intake::new(validator(), 6.0), Intake::new(validator(), 6.0));
    let mut reader = JsonlReader::open(Path::new(CORPUS), 1 << 20).unwrap();
    let mut records = Vec::new();
    while let Some(record) = reader.next_record().unwrap() {
        records.push((record.payload.to_vec(), record.raw_len));
    }
    // The corpus twice over: the second pass is all duplicates or the same dead letters.
    records.extend(records.clone());
    let position = |i: usize| SourcePosition::File {
        path: CORPUS.into(),
        line: i as u64 + 1,
    };
    let describe = |outcome: &Outcome<'_>| match outcome {
        Outcome::Valid(event) => format!("valid {}", event.event_id()),
        Outcome::Duplicate => "duplicate".to_owned(),
        Outcome::Dead(letter) => format!("{} at {}", letter.reason.as_str(), letter.position),
    };
    let one_by_one: Vec<String> = records
        .iter()
        .enumerate()
        .map(|(i, (payload, raw_len))| describe(&single.accept(payload, *raw_len, || position(i))))
        .collect();
    let mut in_runs = Vec::new();
    for (run, chunk) in records.chunks(7).enumerate() {
        let borrowed: Vec<(&[u8], u64)> = chunk.iter().map(|(p, n)| (p.as_slice(), *n)).collect();
        let outcomes = runs.accept_run(&borrowed, |i| position(run * 7 + i));
        in_runs.extend(outcomes.iter().map(describe));
    }
    assert_eq!(in_runs, one_by_one);
    assert_eq!(runs.counts(), single.counts());
    assert!(runs.counts().is_balanced());
}

#[test]
fn validate_command_accounts_for_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    // One JSON summary line.
    let summary = Cli::new()
        .args([
            "--quiet",
            "validate",
            CORPUS,
            "--now",
            NOW,
            "--dead-letters",
        ])
        .arg(&dead)
        .run_json();
    let expected = expected();
    let count = |what: &str| expected.iter().filter(|e| *e == what).count() as u64;
    let lines = summary["lines"].as_u64().unwrap();
    let valid = summary["valid"].as_u64().unwrap();
    let duplicates = summary["duplicates"].as_u64().unwrap();
    let dead_letters = summary["dead_letters"].as_u64().unwrap();
    assert_eq!(lines, expected.len() as u64);
    assert_eq!(lines, valid + duplicates + dead_letters);
    assert_eq!(valid, count("valid"));
    assert_eq!(duplicates, count("duplicate"));
    let by_reason = summary["by_reason"].as_object().unwrap();
    let reasons_total: u64 = by_reason.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(reasons_total, dead_letters);
    assert_eq!(
        by_reason["unsafe_uri"].as_u64().unwrap(),
        count("unsafe_uri")
    );
    let dead_lines = std::fs::read_to_string(&dead).unwrap();
    assert_eq!(dead_lines.lines().count() as u64, dead_letters);
    for line in dead_lines.lines() {
        let letter: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(letter["position"].as_str().unwrap().starts_with(CORPUS));
        assert!(!letter["detail"].as_str().unwrap().is_empty());
    }
}

#[test]
fn a_line_without_end_is_read_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("endless.jsonl");
    // 64 MiB without a newline: the reader keeps only max_record + 1 bytes of it.
    std::fs::write(&path, vec![b'{'; 64 << 20]).unwrap();
    let mut reader = JsonlReader::open(&path, 1 << 20).unwrap();
    let record = reader.next_record().unwrap().unwrap();
    assert_eq!(record.raw_len, 64 << 20);
    assert_eq!(record.payload.len(), (1 << 20) + 1);
    assert!(reader.next_record().unwrap().is_none());
}
