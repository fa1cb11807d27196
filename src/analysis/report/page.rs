//! The report's single HTML page: sections with their figures and tables, everything inline
//! (SVG plots, pictures as data: URIs, CSS), so that the file alone opens anywhere.

use std::fmt::Write;

/// Text as it may stand in HTML, in an element or in a quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// One section of the page.
pub struct Section {
    pub id: &'static str,
    pub title: &'static str,
    /// HTML, already escaped where it holds data.
    pub body: String,
}

/// A plot with its caption. `svg` is plotters' output.
pub fn figure(id: &str, caption: &str, svg: &str) -> String {
    format!(
        "<figure class=\"plot\" id=\"{}\">{svg}<figcaption>{}</figcaption></figure>\n",
        escape(id),
        escape(caption)
    )
}

/// A paragraph of plain text.
pub fn paragraph(text: &str) -> String {
    format!("<p>{}</p>\n", escape(text))
}

/// A table from its header and rows of text.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut html = String::from("<table><thead><tr>");
    for name in header {
        let _ = write!(html, "<th>{}</th>", escape(name));
    }
    html.push_str("</tr></thead><tbody>");
    for row in rows {
        html.push_str("<tr>");
        for cell in row {
            let _ = write!(html, "<td>{}</td>", escape(cell));
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>\n");
    html
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222}\
header{background:#0b3d5c;color:#fff;padding:16px 24px}h1{margin:0;font-size:24px}\
header p{margin:4px 0 0;opacity:.85}nav{padding:8px 24px;background:#eef3f6;position:sticky;\
top:0}nav a{margin-right:16px;color:#0b3d5c}main{padding:0 24px 48px}section{margin-top:28px}\
h2{border-bottom:1px solid #ccd;padding-bottom:4px}figure{display:inline-block;margin:8px 16px 8px 0;\
vertical-align:top}figcaption{font-size:13px;color:#555;max-width:640px}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccd;padding:3px 8px;\
font-size:13px;text-align:right}th{background:#eef3f6}td:first-child{text-align:left}\
.pair{display:inline-block;margin:8px 16px 8px 0;padding:8px;border:1px solid #ccd;\
max-width:360px;vertical-align:top}.pair p{font-size:12px;margin:4px 0}\
.pair .side{display:inline-block;width:168px;text-align:center;font-size:12px}\
img.thumb{width:160px;height:160px;object-fit:contain;background:#f4f4f4}\
.missing{display:inline-block;width:160px;height:160px;background:#f4f4f4;font-size:11px;\
overflow:hidden}";

/// The whole page.
pub fn page(title: &str, subtitle: &str, sections: &[Section]) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{title}</title><style>{STYLE}</style></head><body>\n\
         <header><h1>{title}</h1><p>{subtitle}</p></header>\n<nav>",
        title = escape(title),
        subtitle = escape(subtitle),
    );
    for section in sections {
        let _ = write!(
            html,
            "<a href=\"#{}\">{}</a>",
            section.id,
            escape(section.title)
        );
    }
    html.push_str("</nav>\n<main>\n");
    for section in sections {
        let _ = write!(
            html,
            "<section id=\"{}\"><h2>{}</h2>\n{}</section>\n",
            section.id,
            escape(section.title),
            section.body
        );
    }
    html.push_str("</main></body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_cannot_break_out_of_its_element() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        let html = table(&["prompt"], &[vec!["<img src=x onerror=alert(1)>".into()]]);
        assert!(!html.contains("<img"));
    }
}
