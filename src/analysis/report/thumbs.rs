//! Sample triplets as people judge them: the preferred and the ignored picture side by side,
//! small, inline, with the counts the pair was chosen on.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::page::escape;
use crate::store::ObjectRoot;

/// Largest picture read for a thumbnail.
const MAX_PICTURE_BYTES: u64 = 32 << 20;
/// Side of a thumbnail, in pixels.
const SIDE: u32 = 160;

/// One side of a pair: its picture and its window's counts.
pub struct Side<'a> {
    pub path: &'a str,
    pub views: Option<i64>,
    pub remixes: Option<i64>,
}

/// A thumbnail as a PNG data: URI; `Err` says why there is none (the page shows it instead).
pub async fn thumbnail(images: Option<&ObjectRoot>, path: &str) -> Result<String, String> {
    // Files written with path_style = "absolute" or "url" name their pictures in full.
    let bytes = match path.rsplit_once('/') {
        Some((folder, name)) if path.starts_with('/') || path.contains("://") => {
            let folder = ObjectRoot::open(folder).map_err(|e| e.to_string())?;
            folder.get(name, MAX_PICTURE_BYTES).await
        }
        _ => {
            let images = images.ok_or("no --images root given")?;
            images.get(path, MAX_PICTURE_BYTES).await
        }
    }
    .map_err(|e| e.to_string())?;
    let picture = image::load_from_memory(&bytes).map_err(|e| format!("not a picture: {e}"))?;
    let small = picture.thumbnail(SIDE, SIDE);
    let mut png = Vec::new();
    small
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| e.to_string())?;
    Ok(format!("data:image/png;base64,{}", STANDARD.encode(png)))
}

/// A pair's HTML: prompt, then preferred and ignored with their counts.
pub fn pair_html(
    prompt: &str,
    confidence: Option<f64>,
    sides: [(&Side<'_>, &Result<String, String>); 2],
) -> String {
    let mut html = format!(
        "<div class=\"pair\"><p>“{}”</p><p>confidence {}</p>",
        escape(prompt),
        confidence.map_or("?".into(), |c| format!("{c:.3}"))
    );
    for ((side, picture), label) in sides.iter().zip(["preferred", "ignored"]) {
        let counts = format!(
            "{label}: {} remixes / {} views",
            side.remixes.map_or("?".into(), |n| n.to_string()),
            side.views.map_or("?".into(), |n| n.to_string())
        );
        let shown = match picture {
            Ok(uri) => format!(
                "<img class=\"thumb\" alt=\"{}\" src=\"{uri}\">",
                escape(side.path)
            ),
            Err(why) => format!(
                "<span class=\"missing\">{}: {}</span>",
                escape(side.path),
                escape(why)
            ),
        };
        html.push_str(&format!(
            "<span class=\"side\">{shown}<br>{}</span>",
            escape(&counts)
        ));
    }
    html.push_str("</div>\n");
    html
}
