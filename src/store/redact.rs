//! Secrets stay out of what is stored and printed: a URL's password is replaced by `***`.

/// `url` as it may be logged, stored or shown in an error: its password, if any, masked.
/// Text that is not a URL is returned as it is.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => match parsed.set_password(Some("***")) {
            Ok(()) => parsed.to_string(),
            // A URL that cannot hold a password (no host) has none to hide.
            Err(()) => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}

/// A `key=value` setting (librdkafka's, say) as it may be shown: the value masked when the
/// key names a secret (`sasl.password`, `ssl.key.password`, `sasl.oauthbearer.config`, …).
pub fn setting(key: &str, value: &str) -> String {
    let secret = [
        "password",
        "secret",
        "jaas",
        "oauthbearer",
        "token",
        "key.pem",
    ]
    .iter()
    .any(|word| key.to_ascii_lowercase().contains(word));
    match secret {
        true => format!("{key}=***"),
        false => format!("{key}={}", redact_url(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::{redact_url, setting};

    #[test]
    fn settings_that_name_a_secret_are_masked() {
        assert_eq!(setting("sasl.password", "hunter2"), "sasl.password=***");
        assert_eq!(setting("ssl.key.password", "x"), "ssl.key.password=***");
        assert_eq!(setting("fetch.min.bytes", "1"), "fetch.min.bytes=1");
    }

    #[test]
    fn masks_the_password_and_keeps_the_rest() {
        assert_eq!(
            redact_url("postgres://user:s3cr%40t@db:5432/x?sslmode=require"),
            "postgres://user:***@db:5432/x?sslmode=require"
        );
        assert_eq!(redact_url("postgres://user@db/x"), "postgres://user@db/x");
        assert_eq!(
            redact_url("sqlite:data/catalog.db"),
            "sqlite:data/catalog.db"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
