//! The streaming consumer's dead letters, copied to a Kafka topic before the commit that stores
//! them in the catalog.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::KafkaSinkError;
use crate::events::DeadLetter;

/// The dead-letter topic: each dead letter's raw bytes as the value, keyed by where it was read
/// (`topic/partition/offset`, which also lets a reader drop the copies a crash may resend), with
/// `reason`, `detail` and `position` headers. Every send is awaited, so a commit that follows
/// has its letters on the topic (at least once; the catalog's table is exactly once).
pub struct DeadLetterTopic {
    producer: FutureProducer,
    topic: String,
}

/// How long one dead letter may take to be acknowledged.
const DEAD_LETTER_TIMEOUT: Duration = Duration::from_secs(30);

impl DeadLetterTopic {
    pub fn connect(
        brokers: &str,
        topic: &str,
        settings: &[(String, String)],
    ) -> Result<Self, KafkaSinkError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all");
        for (key, value) in settings {
            config.set(key, value);
        }
        Ok(Self {
            producer: config.create()?,
            topic: topic.to_owned(),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub async fn send(&self, letters: &[DeadLetter]) -> Result<(), KafkaSinkError> {
        let positions: Vec<String> = letters.iter().map(|l| l.position.to_string()).collect();
        let sends = letters.iter().zip(&positions).map(|(letter, position)| {
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "reason",
                    value: Some(letter.reason.as_str()),
                })
                .insert(Header {
                    key: "detail",
                    value: Some(letter.detail.as_str()),
                })
                .insert(Header {
                    key: "position",
                    value: Some(position),
                });
            let record = FutureRecord::to(&self.topic)
                .key(position)
                .payload(letter.raw.as_slice())
                .headers(headers);
            self.producer.send(record, DEAD_LETTER_TIMEOUT)
        });
        let results = futures::future::join_all(sends).await;
        let failed: Vec<String> = results
            .into_iter()
            .filter_map(|r| r.err().map(|(error, _)| error.to_string()))
            .collect();
        match failed.first() {
            None => Ok(()),
            Some(first) => Err(KafkaSinkError::Undelivered {
                topic: self.topic.clone(),
                sent: letters.len() as u64,
                failed: failed.len() as u64,
                first: first.clone(),
            }),
        }
    }
}
