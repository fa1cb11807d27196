//! How the triplet files name their pictures (`pos_path`, `neg_path`): as the events published
//! them, relative to the pictures' root (the default, and what the official Social Reward
//! loader joins to its own image folder), as absolute paths on this machine, or as URLs a
//! reader can open anywhere (`file://…`, `s3://…`).

use serde::{Deserialize, Serialize};
use url::Url;

use super::error::CurateError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PathStyle {
    /// As published: relative to the pictures' root.
    #[default]
    Relative,
    /// An absolute path on this machine (pictures on a local disk only).
    Absolute,
    /// The pictures' root URL joined with the published path (`file://` for a folder).
    Url,
}

/// Turns a published picture path into the one written, per [`PathStyle`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PicturePaths {
    /// Prepended to relative paths; `None` writes them as published.
    base: Option<Base>,
}

#[derive(Debug, Clone, PartialEq)]
enum Base {
    Folder(String),
    Url(Url),
}

impl PicturePaths {
    /// `images` is the pictures' root as curation is given it: a folder, `file://` or
    /// `s3://` URL.
    pub fn new(style: PathStyle, images: Option<&str>) -> Result<Self, CurateError> {
        if style == PathStyle::Relative {
            return Ok(Self::default());
        }
        let refuse = |why: &str| CurateError::PathStyle {
            style: style_name(style),
            why: why.to_owned(),
        };
        let images = images.ok_or_else(|| refuse("it needs the pictures' root (--images)"))?;
        let folder = match images.strip_prefix("file://") {
            Some(path) => Some(path),
            None if images.contains("://") => None,
            None => Some(images),
        };
        let folder = folder
            .map(|f| std::path::absolute(f).map_err(|e| refuse(&format!("{images}: {e}"))))
            .transpose()?;
        let base = match (style, folder) {
            (PathStyle::Absolute, Some(folder)) => {
                let mut text = folder.display().to_string();
                if !text.ends_with('/') {
                    text.push('/');
                }
                Base::Folder(text)
            }
            (PathStyle::Absolute, None) => {
                return Err(refuse(&format!(
                    "{images} is not on this machine's disk (path_style = \"url\" names it)"
                )));
            }
            (_, Some(folder)) => Base::Url(
                Url::from_directory_path(&folder)
                    .map_err(|()| refuse(&format!("{} is not a folder path", folder.display())))?,
            ),
            (_, None) => {
                let mut text = images.to_owned();
                if !text.ends_with('/') {
                    text.push('/');
                }
                Base::Url(Url::parse(&text).map_err(|e| refuse(&format!("{images}: {e}")))?)
            }
        };
        Ok(Self { base: Some(base) })
    }

    /// The path written for a picture published as `uri`. Paths that are already absolute or
    /// URLs, and paths that climb out of the root, are written as published.
    pub fn show(&self, uri: &str) -> String {
        let relative = !uri.starts_with('/')
            && !uri.contains("://")
            && !uri.split('/').any(|part| part == "..");
        match (&self.base, relative) {
            (Some(Base::Folder(folder)), true) => format!("{folder}{uri}"),
            (Some(Base::Url(base)), true) => base
                .join(uri)
                .map_or_else(|_| uri.to_owned(), |url| url.to_string()),
            _ => uri.to_owned(),
        }
    }
}

fn style_name(style: PathStyle) -> &'static str {
    match style {
        PathStyle::Relative => "relative",
        PathStyle::Absolute => "absolute",
        PathStyle::Url => "url",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_keeps_what_was_published() {
        let paths = PicturePaths::new(PathStyle::Relative, Some("s3://b/images")).unwrap();
        assert_eq!(paths.show("i1.png"), "i1.png");
    }

    #[test]
    fn absolute_and_url_resolve_against_a_local_root() {
        let absolute = PicturePaths::new(PathStyle::Absolute, Some("/data/sim/images")).unwrap();
        assert_eq!(absolute.show("a/i 1.png"), "/data/sim/images/a/i 1.png");
        let url = PicturePaths::new(PathStyle::Url, Some("file:///data/sim/images/")).unwrap();
        assert_eq!(url.show("a/i 1.png"), "file:///data/sim/images/a/i%201.png");
        let relative_root = PicturePaths::new(PathStyle::Absolute, Some("images")).unwrap();
        assert!(relative_root.show("i1.png").starts_with('/'));
    }

    #[test]
    fn url_joins_an_object_store_root_and_absolute_refuses_it() {
        let url = PicturePaths::new(PathStyle::Url, Some("s3://social-reward/images")).unwrap();
        assert_eq!(url.show("i1.png"), "s3://social-reward/images/i1.png");
        let refused = PicturePaths::new(PathStyle::Absolute, Some("s3://social-reward/images"));
        assert!(refused.unwrap_err().to_string().contains("url"));
        assert!(PicturePaths::new(PathStyle::Url, None).is_err());
    }

    #[test]
    fn climbing_or_absolute_published_paths_are_left_alone() {
        let url = PicturePaths::new(PathStyle::Url, Some("s3://b/images")).unwrap();
        assert_eq!(url.show("../secret.png"), "../secret.png");
        assert_eq!(url.show("s3://other/x.png"), "s3://other/x.png");
        assert_eq!(url.show("/abs/x.png"), "/abs/x.png");
    }
}
