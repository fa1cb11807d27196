//! Prompt → theme: keyword tables for subject kind, hue, style and scene flags.

/// A colour as red, green and blue in [0, 1].
pub(super) type Rgbf = [f64; 3];

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Disc,
    Tower,
    Block,
    Creature,
}

#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Style {
    #[default]
    Plain,
    Watercolor,
    Neon,
    Pixel,
    Oil,
}

pub(super) const KINDS: [Kind; 4] = [Kind::Disc, Kind::Tower, Kind::Block, Kind::Creature];
pub(super) const KIND_WORDS: [&str; 4] = [
    "sun moon ball planet orb apple flower bubble clock",
    "mountain tree forest tower pyramid volcano rocket lighthouse",
    "city house robot building castle car train ship cabin skyline",
    "cat fox dog bird owl horse dragon rabbit bear wolf fish person girl man woman",
];
pub(super) const HUES: &str = "red:2 crimson:350 orange:28 amber:40 golden:46 gold:46 yellow:55 lime:90 \
    green:125 emerald:145 teal:175 turquoise:178 cyan:188 blue:218 azure:205 navy:232 \
    purple:272 violet:280 magenta:305 pink:330 brown:24 autumn:30 sunset:18 ice:195 snowy:200";
pub(super) const STYLES: [Style; 4] = [Style::Watercolor, Style::Neon, Style::Pixel, Style::Oil];
pub(super) const STYLE_WORDS: [&str; 4] = [
    "watercolor watercolour",
    "neon cyberpunk synthwave",
    "pixel 8bit voxel",
    "oil impasto painting",
];
pub(super) const NIGHT: &str = "night space galaxy moonlit dark starry midnight";
pub(super) const HAZE: &str = "misty mist fog foggy haze hazy dreamy";
pub(super) const WATER: &str = "ocean sea lake river beach water harbor pond";

#[derive(Default)]
pub(super) struct Theme {
    pub(super) kinds: Vec<Kind>,
    pub(super) hue: Option<f64>,
    pub(super) style: Style,
    pub(super) night: bool,
    pub(super) haze: bool,
    pub(super) water: bool,
    pub(super) key: [u8; 32],
}

pub(super) fn read_prompt(prompt: &str) -> Theme {
    let key = *blake3::hash(prompt.as_bytes()).as_bytes();
    let mut t = Theme {
        key,
        ..Theme::default()
    };
    // Only the opening words are read, so a pathological prompt costs no more than a normal one.
    let words = prompt
        .split(|ch: char| !ch.is_alphanumeric())
        .filter(|w| !w.is_empty());
    for raw in words.take(128) {
        let w = raw.chars().take(24).collect::<String>().to_lowercase();
        let stem = w.strip_suffix('s').unwrap_or(&w);
        let is = |k: &str| k == w || k == stem;
        let listed = |list: &str| list.split_whitespace().any(is);
        for (kind, list) in KINDS.into_iter().zip(KIND_WORDS) {
            if listed(list) && t.kinds.len() < 3 && !t.kinds.contains(&kind) {
                t.kinds.push(kind);
            }
        }
        if t.hue.is_none() {
            let mut entries = HUES.split_whitespace().filter_map(|e| e.split_once(':'));
            t.hue = entries
                .find(|(name, _)| is(name))
                .and_then(|(_, hue)| hue.parse().ok());
        }
        if let Some((style, _)) = STYLES.into_iter().zip(STYLE_WORDS).find(|(_, l)| listed(l)) {
            t.style = style;
        }
        t.night |= listed(NIGHT);
        t.haze |= listed(HAZE);
        t.water |= listed(WATER);
    }
    t
}
