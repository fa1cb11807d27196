//! Object storage by URL: a local folder (plain path or `file://`) or `s3://bucket/prefix`
//! (endpoint and credentials from the usual `AWS_*` environment variables, so MinIO and other
//! S3-compatible stores work by configuration alone).

use std::sync::Arc;

use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("object store URL {url:?}: {message}")]
    Url { url: String, message: String },
    #[error("key {key:?} is not a safe object path: {message}")]
    Key { key: String, message: String },
    #[error("object {key} is {size} bytes, over the {limit}-byte limit")]
    TooLarge { key: String, size: u64, limit: u64 },
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
}

/// A store plus the prefix every key is resolved under.
#[derive(Debug, Clone)]
pub struct ObjectRoot {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    url: String,
    /// The same place however the URL spelled it.
    location: String,
}

impl ObjectRoot {
    pub fn open(url: &str) -> Result<Self, ObjectError> {
        let bad = |message: String| ObjectError::Url {
            url: url.to_owned(),
            message,
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket".into()));
            }
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err()
            {
                builder = builder.with_region("us-east-1");
            }
            let store = builder.build().map_err(|e| bad(e.to_string()))?;
            let prefix = ObjectPath::parse(prefix).map_err(|e| bad(e.to_string()))?;
            let location = match prefix.as_ref() {
                "" => format!("s3://{bucket}"),
                path => format!("s3://{bucket}/{path}"),
            };
            return Ok(Self {
                store: Arc::new(store),
                prefix,
                url: url.to_owned(),
                location,
            });
        }
        let local = match url.strip_prefix("file://") {
            Some(path) => path,
            None if url.contains("://") => {
                return Err(bad(
                    "scheme not supported (s3://, file://, or a path)".into()
                ));
            }
            None => url,
        };
        std::fs::create_dir_all(local).map_err(|e| bad(e.to_string()))?;
        let store = LocalFileSystem::new_with_prefix(local).map_err(|e| bad(e.to_string()))?;
        let canonical = std::fs::canonicalize(local).map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            store: Arc::new(store),
            prefix: ObjectPath::default(),
            url: url.to_owned(),
            location: format!("file://{}", canonical.display()),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where this root is, the same however it was spelled (`data/out`, `./data/out/`,
    /// `file:///abs/data/out`; `s3://bucket/prefix` with or without a final slash): what the
    /// catalog records curation into.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Resolves a relative key; `..`, empty segments and similar escapes are refused.
    pub fn key(&self, relative: &str) -> Result<ObjectPath, ObjectError> {
        let parsed = ObjectPath::parse(relative).map_err(|e| ObjectError::Key {
            key: relative.to_owned(),
            message: e.to_string(),
        })?;
        Ok(self.prefix.parts().chain(parsed.parts()).collect())
    }

    /// The URL of a key under this root, as recorded in manifests.
    pub fn url_of(&self, relative: &str) -> String {
        format!("{}/{}", self.url.trim_end_matches('/'), relative)
    }

    pub async fn put(&self, relative: &str, bytes: Vec<u8>) -> Result<(), ObjectError> {
        let key = self.key(relative)?;
        self.store.put(&key, PutPayload::from(bytes)).await?;
        Ok(())
    }

    pub async fn exists(&self, relative: &str) -> Result<bool, ObjectError> {
        let key = self.key(relative)?;
        match self.store.head(&key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Every key under `relative` (recursively; "" for the whole root), relative to the root,
    /// sorted so that callers see a stable order whatever the store returns.
    pub async fn list(&self, relative: &str) -> Result<Vec<String>, ObjectError> {
        let prefix = if relative.is_empty() {
            self.prefix.clone()
        } else {
            self.key(relative)?
        };
        let skip = self.prefix.parts().count();
        let mut listing = self.store.list(Some(&prefix));
        let mut keys = Vec::new();
        while let Some(meta) = listing.next().await {
            let location = meta?.location;
            let relative: ObjectPath = location.parts().skip(skip).collect();
            keys.push(relative.to_string());
        }
        keys.sort();
        Ok(keys)
    }

    /// Reads an object, refusing (before downloading) one larger than `limit` bytes.
    pub async fn get(&self, relative: &str, limit: u64) -> Result<Vec<u8>, ObjectError> {
        let key = self.key(relative)?;
        let meta = self.store.head(&key).await?;
        if meta.size > limit {
            return Err(ObjectError::TooLarge {
                key: relative.to_owned(),
                size: meta.size,
                limit,
            });
        }
        Ok(self.store.get(&key).await?.bytes().await?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_root_round_trips_and_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let root = ObjectRoot::open(&format!("file://{}", dir.path().display())).unwrap();
        root.put("a/b.bin", vec![1, 2, 3]).await.unwrap();
        assert_eq!(root.get("a/b.bin", 10).await.unwrap(), vec![1, 2, 3]);
        assert!(root.exists("a/b.bin").await.unwrap());
        assert!(!root.exists("a/c.bin").await.unwrap());
        root.put("a/d/e.bin", vec![4]).await.unwrap();
        assert_eq!(root.list("").await.unwrap(), vec!["a/b.bin", "a/d/e.bin"]);
        assert_eq!(root.list("a/d").await.unwrap(), vec!["a/d/e.bin"]);
        assert!(matches!(
            root.get("a/b.bin", 2).await,
            Err(ObjectError::TooLarge { .. })
        ));
        assert!(root.key("../etc/passwd").is_err());
        assert!(root.key("a/../../x").is_err());
        assert!(ObjectRoot::open("ftp://x/y").is_err());
    }
}
