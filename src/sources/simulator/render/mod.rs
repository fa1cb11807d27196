//! Deterministic procedural renderer for the community simulator.
//!
//! The simulator needs "generated" images whose latent quality is learnable from pixels alone,
//! whose content follows the prompt, and whose re-uploads stay close under a perceptual hash.
//!
//! * **Prompt → theme.** Keyword tables map words to subject kinds (disc, tower, block,
//!   creature), a base hue, a style (watercolor, neon, pixel art, oil) and scene flags (night,
//!   haze, water). Whatever the prompt leaves open comes from a ChaCha stream keyed by the
//!   prompt's blake3 hash, so all images of one prompt share palette and subject identity.
//! * **Seed → layout.** A second stream keyed by prompt hash and seed places the subject, the
//!   horizon and a low-frequency light field. The light field is there for the perceptual hash:
//!   a gradient hash compares neighbouring cells of a 9x8 thumbnail, so flat regions give
//!   coin-flip bits after re-encoding, while a strong seed-dependent luminance structure gives
//!   bits that are stable for a repost and independent across images.
//! * **Quality → craft.** `q` goes through an algebraic sigmoid to `c` in [0, 1]. Each effect is
//!   a continuous function of `c` applied to random draws made whatever `c` is, so neighbouring
//!   qualities give neighbouring pictures: harmonic palette vs clashing hues, saturation and
//!   contrast vs mud, rule-of-thirds placement vs off-edge subjects, and defects (junk shapes,
//!   blur, grain, banding, glitch streaks) fading in as `c` drops.
//! * **Portability.** Only correctly rounded operations are used (`+ - * /`, `sqrt`, `floor`,
//!   `round`, remainders, casts); polynomial waves replace `sin`/`exp`, so output is
//!   byte-identical across platforms.

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::imageops::FilterType;
use image::{ImageError, ImageFormat, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What to draw: the prompt picks content, the seed the layout, the quality the craft.
#[derive(Clone, Copy, Debug)]
pub struct SceneSpec<'a> {
    pub prompt: &'a str,
    pub seed: u64,
    pub quality: f64,
}

mod paint;
mod theme;

use paint::*;
use theme::*;

/// Renders `spec` as a `size` x `size` image; never panics, whatever the prompt or quality.
pub fn render_scene(spec: &SceneSpec<'_>, size: u32) -> RgbImage {
    let theme = read_prompt(spec.prompt);
    let (n, style) = (size as usize, theme.style);
    let q = spec.quality.clamp(-8.0, 8.0);
    let q = if q.is_nan() { 0.0 } else { 0.75 * q };
    let c = 0.5 + 0.5 * q / (1.0 + q * q).sqrt();
    let d = 1.0 - c;
    // Smoothstep of the defect level: how far hues and placement drift towards random ones.
    let drift = d * d * (3.0 - 2.0 * d);

    // Prompt-level identity: palette scheme and subject proportions.
    let mut pr = Rand(ChaCha8Rng::from_seed(theme.key));
    let h0 = theme.hue.unwrap_or(pr.f(0.0, 360.0));
    let fallback = [Kind::Disc, Kind::Tower, Kind::Block, Kind::Creature][pr.pick(4)];
    let mut kinds = theme.kinds;
    if kinds.is_empty() {
        kinds.push(fallback);
    }
    let spread = pr.f(18.0, 40.0);
    let bg_h = h0 + if pr.pick(2) == 0 { 180.0 } else { 2.0 * spread };
    let form = [pr.f(0.0, 1.0), pr.f(0.0, 1.0), pr.f(0.0, 1.0)];

    let mut key = blake3::Hasher::new();
    key.update(&theme.key).update(&spec.seed.to_le_bytes());
    let mut rng = Rand(ChaCha8Rng::from_seed(*key.finalize().as_bytes()));

    // Roles: sky, ground, subject, backdrop, accent. Low quality pulls each hue towards an
    // unrelated random one, which makes bad palettes clash rather than merely shift.
    let (bg0, bg1, bg2) = (bg_h + 0.5 * spread, bg_h - 0.5 * spread, bg_h - spread);
    let harmonic = [bg0, bg1, h0, bg2, h0 + 180.0];
    let hues = harmonic.map(|h| h + ((rng.f(180.0, 540.0) - h).rem_euclid(360.0) - 180.0) * drift);
    let sat = 0.35 + 0.65 * c;
    let (neon, night) = (style == Style::Neon, theme.night || style == Style::Neon);
    let dusk = |day: f64, dark: f64| if night { dark } else { day };
    let sky = hsv(hues[0], 0.4 * sat, dusk(0.9, 0.14));
    let ground = hsv(hues[1], 0.5 * sat, dusk(0.55, 0.25));
    let body_s = if neon { 1.0 } else { 0.85 * sat };
    let body = hsv(hues[2], body_s, dusk(0.62, 0.9));
    let backdrop = hsv(hues[3], 0.55 * sat, dusk(0.4, 0.45));
    let accent = hsv(hues[4], 0.9 * sat, dusk(0.85, 1.0));

    // Layout: every draw happens whatever the quality, so nearby qualities share a layout.
    let (horizon, tilt) = (rng.f(0.5, 0.75), rng.f(-0.25, 0.25));
    // Three plane waves (cycles across the image, phase, amplitude) and a sun/moon glow.
    let mut waves = [[0.0; 4]; 3];
    for w in &mut waves {
        let [a, b, phase, m] = rng.units();
        *w = [4.4 * a - 2.2, 4.4 * b - 2.2, phase, 0.05 + 0.05 * m];
    }
    let glow = [rng.f(0.1, 0.9), rng.f(0.1, 0.6), rng.f(0.15, 0.35)];
    // Good placement: a jittered rule-of-thirds point and a moderate size; bad: anywhere, any size.
    let (tx, ty) = [(1.0, 1.0), (2.0, 1.0), (1.0, 1.8), (2.0, 1.8)][rng.pick(4)];
    let [jx, jy, bx, by, gs, bs] = rng.units();
    let lerp = |good: f64, bad: f64| good + (bad - good) * drift;
    let px = lerp(tx / 3.0 + 0.08 * jx - 0.04, 1.1 * bx - 0.05);
    let py = lerp(ty / 3.0 + 0.08 * jy - 0.04, 1.1 * by - 0.05);
    let ps = lerp(0.15 + 0.05 * gs, 0.06 + 0.36 * bs);
    let dir = if rng.pick(2) == 0 { 1.0 } else { -1.0 };
    let salt = rng.0.random::<u64>();

    let nf = n.max(1) as f64;
    let inv_glow = 1.0 / (glow[2] * glow[2]);
    let sun = mix(sky, [1.0, 0.97, 0.9], 0.7);
    let water = if theme.water { 0.12 } else { 0.0 };
    // Per-column values hoisted out of the pixel loop; divisions are what it would stall on.
    let cols: Vec<(f64, f64, f64)> = (0..n)
        .map(|x| (x as f64 + 0.5) / nf)
        .map(|u| {
            (
                u,
                horizon + tilt * (u - 0.5),
                1.0 / (horizon + tilt * (u - 0.5)),
            )
        })
        .collect();
    let edge = nf / (1.0 + 0.01 * nf);
    let mut pixels = Vec::with_capacity(n * n);
    for y in 0..n {
        let v = (y as f64 + 0.5) / nf;
        for (x, &(u, hy, inv_hy)) in cols.iter().enumerate() {
            let below = ((v - hy) * edge + 0.5).clamp(0.0, 1.0);
            let ripple = water * wave(v * 30.0 + 2.0 * wave(u * 2.0 + v));
            let land = scale(ground, 0.8 + 0.5 * (v - hy) + ripple);
            let mut col = mix(scale(sky, 0.8 + 0.3 * (v * inv_hy).min(1.0)), land, below);
            let wv = |w: [f64; 4]| w[3] * wave(w[0] * u + w[1] * v + w[2]);
            let light = wv(waves[0]) + wv(waves[1]) + wv(waves[2]);
            let (gx, gy) = (u - glow[0], v - glow[1]);
            let r2 = (gx * gx + gy * gy) * inv_glow;
            let halo = dusk(0.45, 0.2) / ((1.0 + r2) * (1.0 + r2));
            // The additive part keeps dark (night, neon) skies from hashing as flat regions.
            let (gain, lift) = (1.0 + light, dusk(0.05, 0.3) * light);
            let lit = [
                col[0] * gain + lift,
                col[1] * gain + lift,
                col[2] * gain + lift,
            ];
            col = mix(lit, sun, halo);
            if theme.haze {
                col = mix(col, [0.85; 3], 0.45 * (1.0 - (v - hy).abs() * 3.0).max(0.0));
            }
            if night && below < 0.5 && noise(x, y, salt ^ 7) > 0.993 {
                col = [0.95; 3];
            }
            pixels.push(col);
        }
    }

    let mut cv = Canvas { n, px: pixels };
    let look = Look::new(nf, c, style);
    // Secondary kinds become a backdrop row along the horizon, hazed to sit behind the subject.
    let backdrop = mix(backdrop, sky, if theme.haze { 0.45 } else { 0.0 });
    for &kind in kinds.iter().skip(1) {
        for _ in 0..4 {
            let (x, s) = (rng.f(0.0, 1.0), rng.f(0.05, 0.1));
            let at = (x, horizon + tilt * (x - 0.5) - s * 0.6, s);
            let parts = figure(kind, at, form, dir, [backdrop, accent]);
            look.draw(&mut cv, &parts, 1.0);
        }
    }
    let shadow = Prim::ellipse(px, py + 1.3 * ps, 1.1 * ps, 0.18 * ps);
    cv.paint(
        &shadow,
        Ink::new([0.0; 3], 0.3 * c, look.feather + 0.02 * nf),
    );
    let parts = figure(kinds[0], (px, py, ps), form, dir, [body, accent]);
    look.draw(&mut cv, &parts, 1.0);

    // Junk shapes and glitch streaks fade in one after another as quality drops.
    for i in 0..10 {
        let [x, y, s] = rng.units();
        let s = 0.03 + 0.11 * s;
        let rgb = hsv(rng.f(0.0, 360.0), 0.9, rng.f(0.3, 1.0));
        let prim = match rng.pick(3) {
            0 => Prim::ellipse(x, y, s, s * 0.7),
            1 => Prim::Rect(x, y, s, s * 0.5),
            _ => Prim::tri([(x, y - s), (x - s, y + s), (x + s * 0.7, y + s * 0.4)]),
        };
        let fade = (d * 13.0 - 3.5 - i as f64).clamp(0.0, 1.0);
        look.draw(&mut cv, &[(prim, rgb)], fade);
    }
    for i in 0..6 {
        let [x, y, w, h] = rng.units();
        let (w, h) = (0.1 + 0.3 * w, 0.004 + 0.006 * h);
        let fade = (d * d * d * 14.0 - 1.0 - i as f64).clamp(0.0, 1.0);
        let streak = hsv(rng.f(0.0, 360.0), 1.0, 1.0);
        cv.paint(&Prim::Rect(x, y, w, h), Ink::new(streak, 0.8 * fade, 1.0));
    }
    if style == Style::Pixel {
        pixelate(&mut cv);
    }
    finish(&cv, style, d, salt)
}

/// Simulates a re-upload: rescale, faint sensor noise, a brightness shift and a JPEG round trip.
pub fn repost_variant(original: &RgbImage, seed: u64, size: u32) -> RgbImage {
    if original.width() == 0 || original.height() == 0 || size == 0 {
        return RgbImage::new(size, size);
    }
    let mut rng = Rand(ChaCha8Rng::seed_from_u64(seed ^ 0x5245_504F_5354));
    let mut img = image::imageops::resize(original, size, size, FilterType::Triangle);
    let (shift, salt) = (rng.f(-8.0, 8.0), rng.0.random::<u64>());
    let w = size as usize;
    for (i, p) in img.pixels_mut().enumerate() {
        let jitter = 3.0 * noise(i % w, i / w, salt);
        for v in &mut p.0 {
            *v = ((f64::from(*v) + shift + jitter).clamp(0.0, 255.0) + 0.5) as u8;
        }
    }
    let mut buf = Vec::new();
    let encoder = JpegEncoder::new_with_quality(&mut buf, rng.0.random_range(75..=90));
    if img.write_with_encoder(encoder).is_err() {
        return img;
    }
    match image::load_from_memory_with_format(&buf, ImageFormat::Jpeg) {
        Ok(decoded) => decoded.into_rgb8(),
        Err(_) => img,
    }
}

/// Lossless encoding for storage; the simulator's originals are PNG, only reposts are JPEG.
pub fn encode_png(img: &RgbImage) -> Result<Vec<u8>, ImageError> {
    let mut buf = Vec::new();
    img.write_with_encoder(PngEncoder::new(&mut buf))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::imageops::FilterType;
    use image_hasher::{HashAlg, HasherConfig};
    use rand_distr::StandardNormal;

    const PROMPTS: [&str; 6] = [
        "a red fox in a misty forest, watercolor",
        "a golden sun over the ocean",
        "a neon city at night",
        "a blue robot, pixel art",
        "castle on a hill, oil painting",
        "portrait of an old sailor",
    ];

    fn render(prompt: &str, seed: u64, quality: f64, size: u32) -> RgbImage {
        render_scene(
            &SceneSpec {
                prompt,
                seed,
                quality,
            },
            size,
        )
    }

    #[test]
    fn rendering_is_deterministic() {
        let a = render(PROMPTS[0], 7, 0.3, 96);
        assert_eq!(a, render(PROMPTS[0], 7, 0.3, 96));
        assert_ne!(a, render(PROMPTS[0], 8, 0.3, 96));
        assert_ne!(a, render(PROMPTS[1], 7, 0.3, 96));
        assert_eq!(repost_variant(&a, 3, 80), repost_variant(&a, 3, 80));
        assert!(encode_png(&a).is_ok_and(|png| png.starts_with(b"\x89PNG")));
    }

    fn quantiles(mut v: Vec<u32>) -> String {
        v.sort_unstable();
        let at = |f: f64| v[((v.len() - 1) as f64 * f) as usize];
        let [lo, p5, mid, p95, hi] = [0.0, 0.05, 0.5, 0.95, 1.0].map(at);
        format!("min {lo} p5 {p5} median {mid} p95 {p95} max {hi}")
    }

    #[test]
    fn reposts_stay_near_and_distinct_images_stay_far() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut originals = Vec::new();
        for i in 0..20 {
            originals.push(render(
                PROMPTS[i % 6],
                i as u64 / 6,
                rng.sample(StandardNormal),
                96,
            ));
        }
        let sizes = [64, 80, 96, 128];
        let reposts = originals
            .iter()
            .enumerate()
            .map(|(i, img)| repost_variant(img, 9, sizes[i % 4]));
        let reposts: Vec<RgbImage> = reposts.collect();
        // Only a filtering resize is asserted: `Nearest` hashes 72 single pixels, so grain and
        // resampling of noisy (low-quality) images flip many bits; it is printed for reference.
        for filter in [FilterType::Triangle, FilterType::Nearest] {
            let config = HasherConfig::new()
                .hash_alg(HashAlg::Gradient)
                .hash_size(8, 8);
            let hasher = config.resize_filter(filter).to_hasher();
            let h: Vec<_> = originals.iter().map(|i| hasher.hash_image(i)).collect();
            let near = h
                .iter()
                .zip(&reposts)
                .map(|(a, r)| a.dist(&hasher.hash_image(r)));
            let near: Vec<u32> = near.collect();
            let pairs = (0..h.len()).flat_map(|i| (0..i).map(move |j| (i, j)));
            let far: Vec<u32> = pairs.map(|(i, j)| h[i].dist(&h[j])).collect();
            let far_ok = far.iter().filter(|&&d| d > 12).count() as f64 / far.len() as f64;
            let (near_q, far_q) = (quantiles(near.clone()), quantiles(far));
            eprintln!("{filter:?}: repost {near_q}; distinct {far_q}; > 12: {far_ok:.3}");
            if filter == FilterType::Triangle {
                assert!(near.iter().all(|&d| d <= 8), "reposts {near:?}");
                assert!(far_ok >= 0.95, "only {far_ok} of distinct pairs are far");
            }
        }
    }

    /// Hand-made "looks good" features: contrast, saturation, hue coherence and (minus) noise.
    fn features(img: &RgbImage) -> [f64; 4] {
        let w = img.width() as usize;
        let px: Vec<[f64; 3]> = img.pixels().map(|p| p.0.map(f64::from)).collect();
        let luma: Vec<f64> = px
            .iter()
            .map(|p| 0.3 * p[0] + 0.59 * p[1] + 0.11 * p[2])
            .collect();
        let n = px.len() as f64;
        let mean = luma.iter().sum::<f64>() / n;
        let contrast = luma.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n;
        let (mut sat, mut va, mut vb, mut len, mut noise) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (i, p) in px.iter().enumerate() {
            // Opponent-colour vector: its angle is the hue, its length the chroma.
            let (a, b) = (p[0] - 0.5 * (p[1] + p[2]), 0.866 * (p[1] - p[2]));
            sat += p[0].max(p[1]).max(p[2]) - p[0].min(p[1]).min(p[2]);
            (va, vb, len) = (va + a, vb + b, len + (a * a + b * b).sqrt());
            if i > w && i + w < px.len() {
                let around = luma[i - 1] + luma[i + 1] + luma[i - w] + luma[i + w];
                noise += (4.0 * luma[i] - around).abs();
            }
        }
        let coherence = (va * va + vb * vb).sqrt() / len.max(1.0);
        [contrast.sqrt(), sat / n, coherence, -noise / n]
    }

    fn spearman(a: &[f64], b: &[f64]) -> f64 {
        let ranks = |v: &[f64]| {
            let mut idx: Vec<usize> = (0..v.len()).collect();
            idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
            let mut r = vec![0.0; v.len()];
            idx.iter()
                .enumerate()
                .for_each(|(rank, &i)| r[i] = rank as f64);
            r
        };
        let (ra, rb, m) = (ranks(a), ranks(b), (a.len() as f64 - 1.0) / 2.0);
        let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - m) * (y - m)).sum();
        cov / ra.iter().map(|x| (x - m).powi(2)).sum::<f64>()
    }

    fn zscore(v: impl Iterator<Item = f64>) -> Vec<f64> {
        let v: Vec<f64> = v.collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        v.iter()
            .map(|x| (x - mean) / var.sqrt().max(1e-9))
            .collect()
    }

    #[test]
    fn quality_is_visible_in_simple_pixel_statistics() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let q: Vec<f64> = (0..100).map(|_| rng.sample(StandardNormal)).collect();
        let feats: Vec<[f64; 4]> = q
            .iter()
            .enumerate()
            .map(|(i, &q)| features(&render(PROMPTS[i % 5], rng.random(), q, 64)))
            .collect();
        let cols: Vec<Vec<f64>> = (0..4).map(|k| zscore(feats.iter().map(|f| f[k]))).collect();
        let score: Vec<f64> = (0..q.len())
            .map(|i| cols.iter().map(|c| c[i]).sum())
            .collect();
        let rho = spearman(&score, &q);
        let per_feature = cols.iter().map(|c| spearman(c, &q));
        let per_feature: Vec<String> = per_feature.map(|r| format!("{r:.2}")).collect();
        // The score must track quality within a prompt, not just tell prompts (palettes, styles)
        // apart: remove each prompt's mean and measure how much variance the prompt explained.
        let prompt_mean = |p: usize| (p..q.len()).step_by(5).map(|i| score[i]).sum::<f64>() / 20.0;
        let means: Vec<f64> = (0..5).map(prompt_mean).collect();
        let within: Vec<f64> = (0..q.len()).map(|i| score[i] - means[i % 5]).collect();
        let rho_within = spearman(&within, &q);
        let total: f64 = score.iter().map(|s| s * s).sum();
        let by_prompt = (0..q.len()).map(|i| means[i % 5].powi(2)).sum::<f64>() / total;
        eprintln!("spearman {rho:.3}, within prompt {rho_within:.3}, per feature {per_feature:?}");
        eprintln!("share of score variance explained by the prompt: {by_prompt:.3}");
        assert!(
            rho >= 0.6 && rho_within >= 0.6,
            "rho {rho}, within {rho_within}"
        );
        assert!(
            by_prompt < 0.3,
            "the score mostly encodes the prompt: {by_prompt}"
        );
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        let long = "castle ".repeat(20_000) + &"é🦊".repeat(5_000);
        for prompt in ["", " ", "🦊🌕 日本の城", "\0\n\t", long.as_str()] {
            for size in [0, 1, 8, 33] {
                for quality in [f64::NAN, f64::NEG_INFINITY, 0.0, f64::INFINITY] {
                    let img = render(prompt, u64::MAX, quality, size);
                    assert_eq!(img.dimensions(), (size, size));
                    assert_eq!(repost_variant(&img, 1, size).dimensions(), (size, size));
                }
            }
        }
        let empty = RgbImage::new(0, 0);
        assert_eq!(repost_variant(&empty, 1, 16).dimensions(), (16, 16));
    }
}
