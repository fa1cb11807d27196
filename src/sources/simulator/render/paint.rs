//! The painting toolkit: colour arithmetic, portable noise, primitives, the canvas, the
//! quality-dependent look, and the low-quality finish (mud, grain, banding, pixel art).

use image::RgbImage;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::theme::*;

pub(super) fn hsv(h: f64, s: f64, v: f64) -> Rgbf {
    let h = h.rem_euclid(360.0) / 60.0;
    let (s, v) = (s.clamp(0.0, 1.0), v.clamp(0.0, 1.0));
    let i = (h as u32).min(5);
    let f = h - f64::from(i);
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    [
        [v, t, p],
        [q, v, p],
        [p, v, t],
        [p, q, v],
        [t, p, v],
        [v, p, q],
    ][i as usize]
}

// Spelled out rather than `array::map`, which is ~20x slower in unoptimised test builds.
pub(super) fn mix(a: Rgbf, b: Rgbf, t: f64) -> Rgbf {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

pub(super) fn scale(a: Rgbf, k: f64) -> Rgbf {
    [a[0] * k, a[1] * k, a[2] * k]
}

/// Euclidean length; `powi` and `hypot` are not guaranteed to round the same on every platform.
pub(super) fn norm(x: f64, y: f64) -> f64 {
    (x * x + y * y).sqrt()
}

/// Period-1 wave in [-1, 1]: a parabolic stand-in for `sin(2πt)` that needs no libm.
pub(super) fn wave(t: f64) -> f64 {
    // Adding and removing 1.5 * 2^52 rounds to the nearest integer in plain IEEE arithmetic;
    // `floor`/`round` are slow libm calls on baseline x86-64 and this is the hottest loop.
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    let f = t - ((t + MAGIC) - MAGIC);
    16.0 * f * (0.5 - f.abs())
}

/// Stateless per-pixel noise, four values in [-1, 1) per hash: per-pixel RNG calls would be slow
/// and would make the draws that follow depend on the image size.
pub(super) fn noise4(x: usize, y: usize, salt: u64) -> [f64; 4] {
    let mut z = (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ salt;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let part = |s: u32| f64::from((z >> s) as u16) / 32768.0 - 1.0;
    [part(0), part(16), part(32), part(48)]
}

pub(super) fn noise(x: usize, y: usize, salt: u64) -> f64 {
    noise4(x, y, salt)[0]
}

pub(super) struct Rand(pub(super) ChaCha8Rng);

impl Rand {
    pub(super) fn f(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.0.random::<f64>()
    }

    pub(super) fn pick(&mut self, n: usize) -> usize {
        self.0.random_range(0..n)
    }

    /// `N` uniform draws in [0, 1), taken in order.
    pub(super) fn units<const N: usize>(&mut self) -> [f64; N] {
        let mut out = [0.0; N];
        for v in &mut out {
            *v = self.0.random();
        }
        out
    }
}

/// Shapes in unit coordinates (0..1 across the image).
#[derive(Clone, Copy)]
pub(super) enum Prim {
    /// Centre, radii and inverse radii (the distance loop would otherwise divide four times).
    Ellipse(f64, f64, f64, f64, f64, f64),
    Rect(f64, f64, f64, f64),
    /// Edge half-planes `(nx, ny, offset)` with outward unit normals, then the vertices.
    Tri([(f64, f64, f64); 3], [(f64, f64); 3]),
}

impl Prim {
    pub(super) fn ellipse(cx: f64, cy: f64, rx: f64, ry: f64) -> Prim {
        let (rx, ry) = (rx.max(1e-3), ry.max(1e-3));
        Prim::Ellipse(cx, cy, rx, ry, 1.0 / rx, 1.0 / ry)
    }

    pub(super) fn tri(p: [(f64, f64); 3]) -> Prim {
        let area = (p[1].0 - p[0].0) * (p[2].1 - p[0].1) - (p[1].1 - p[0].1) * (p[2].0 - p[0].0);
        let sign = if area < 0.0 { 1.0 } else { -1.0 };
        let edge = |(ax, ay): (f64, f64), (bx, by): (f64, f64)| {
            let len = norm(bx - ax, by - ay).max(1e-9);
            let (nx, ny) = (-sign * (by - ay) / len, sign * (bx - ax) / len);
            (nx, ny, nx * ax + ny * ay)
        };
        Prim::Tri([edge(p[0], p[1]), edge(p[1], p[2]), edge(p[2], p[0])], p)
    }

    pub(super) fn bbox(&self) -> (f64, f64, f64, f64) {
        match *self {
            Prim::Ellipse(x, y, rx, ry, ..) | Prim::Rect(x, y, rx, ry) => {
                (x - rx, y - ry, x + rx, y + ry)
            }
            Prim::Tri(_, p) => {
                let xs = [p[0].0, p[1].0, p[2].0];
                let ys = [p[0].1, p[1].1, p[2].1];
                let lo = |v: [f64; 3]| v[0].min(v[1]).min(v[2]);
                let hi = |v: [f64; 3]| v[0].max(v[1]).max(v[2]);
                (lo(xs), lo(ys), hi(xs), hi(ys))
            }
        }
    }

    /// Approximate signed distance (negative inside); it only has to be right near the edge,
    /// where it sets the anti-aliasing or softness ramp.
    pub(super) fn sd(&self, x: f64, y: f64) -> f64 {
        match *self {
            Prim::Ellipse(cx, cy, rx, ry, irx, iry) => {
                let (px, py) = (x - cx, y - cy);
                let k0 = norm(px * irx, py * iry);
                let k1 = norm(px * irx * irx, py * iry * iry);
                if k1 < 1e-9 {
                    -rx.min(ry)
                } else {
                    k0 * (k0 - 1.0) / k1
                }
            }
            Prim::Rect(cx, cy, hw, hh) => {
                let (dx, dy) = ((x - cx).abs() - hw, (y - cy).abs() - hh);
                norm(dx.max(0.0), dy.max(0.0)) + dx.max(dy).min(0.0)
            }
            Prim::Tri(e, _) => {
                let d = |(nx, ny, off): (f64, f64, f64)| nx * x + ny * y - off;
                d(e[0]).max(d(e[1])).max(d(e[2]))
            }
        }
    }
}

#[derive(Clone, Copy)]
pub(super) struct Ink {
    pub(super) rgb: Rgbf,
    pub(super) alpha: f64,
    pub(super) feather: f64, // edge ramp in pixels, >= 1
    pub(super) ring: f64,    // outline half-width in unit coordinates; 0 fills
    pub(super) add: bool,
    pub(super) shade: f64, // top-lit gradient; gives depth at high quality
}

impl Ink {
    pub(super) fn new(rgb: Rgbf, alpha: f64, feather: f64) -> Ink {
        let (ring, add, shade) = (0.0, false, 0.0);
        Ink {
            rgb,
            alpha,
            feather,
            ring,
            add,
            shade,
        }
    }

    pub(super) fn ring(self, ring: f64) -> Ink {
        Ink { ring, ..self }
    }
}

pub(super) struct Canvas {
    pub(super) n: usize,
    pub(super) px: Vec<Rgbf>,
}

impl Canvas {
    pub(super) fn paint(&mut self, prim: &Prim, ink: Ink) {
        if ink.alpha <= 0.0 {
            return;
        }
        let n = self.n as f64;
        let (x0, y0, x1, y1) = prim.bbox();
        let pad = ink.ring + ink.feather / n;
        let span = |a: f64, b: f64| {
            ((a - pad) * n).max(0.0) as usize..((b + pad) * n + 1.0).min(n) as usize
        };
        let (height, ramp) = ((y1 - y0).max(1e-6), n / ink.feather);
        for y in span(y0, y1) {
            let v = (y as f64 + 0.5) / n;
            let lit = 1.0 + ink.shade * (0.5 - (v - y0) / height).clamp(-0.5, 0.5);
            let col = scale(ink.rgb, lit);
            for x in span(x0, x1) {
                let mut sd = prim.sd((x as f64 + 0.5) / n, v);
                if ink.ring > 0.0 {
                    sd = sd.abs() - ink.ring;
                }
                let a = (0.5 - sd * ramp).clamp(0.0, 1.0) * ink.alpha;
                if a > 0.0 {
                    let p = &mut self.px[y * self.n + x];
                    let to = if ink.add {
                        [p[0] + col[0], p[1] + col[1], p[2] + col[2]]
                    } else {
                        col
                    };
                    *p = mix(*p, to, a);
                }
            }
        }
    }
}

/// One recognisable figure per kind, in units of `s` around `(cx, cy)`; `form` holds
/// prompt-level proportions so a prompt's subject keeps its identity across seeds.
pub(super) fn figure(
    kind: Kind,
    at: (f64, f64, f64),
    form: [f64; 3],
    dir: f64,
    pal: [Rgbf; 2],
) -> Vec<(Prim, Rgbf)> {
    let ((cx, cy, s), [body, accent]) = (at, pal);
    let (dark, light) = (scale(body, 0.55), mix(body, [1.0; 3], 0.45));
    let e =
        |x: f64, y: f64, rx: f64, ry: f64| Prim::ellipse(cx + x * s, cy + y * s, rx * s, ry * s);
    let r = |x: f64, y: f64, w: f64, h: f64| Prim::Rect(cx + x * s, cy + y * s, w * s, h * s);
    let t = |p: [f64; 6]| {
        let v = |i: usize| (cx + p[i] * s, cy + p[i + 1] * s);
        Prim::tri([v(0), v(2), v(4)])
    };
    match kind {
        Kind::Disc => vec![
            (e(0.0, 0.0, 1.25, 1.25), mix(body, accent, 0.3)),
            (e(0.0, 0.0, 1.0, 1.0), body),
            (e(-0.3, -0.3, 0.35, 0.35), light),
        ],
        Kind::Tower => {
            let w = 0.55 + 0.5 * form[0];
            let cap = mix(light, scale(body, 0.8), form[1].round());
            vec![
                (r(0.0, 1.15, 0.14, 0.25), dark),
                (t([0.0, -1.3, -w, 1.0, w, 1.0]), body),
                (t([0.0, -1.3, -0.4 * w, -0.4, 0.4 * w, -0.4]), cap),
            ]
        }
        Kind::Block => {
            let (w, h) = (0.45 + 0.35 * form[0], 0.8 + 0.4 * form[1]);
            let mut parts = vec![(r(0.0, 0.0, w, h), body)];
            parts.push((t([-1.1 * w, -h, 1.1 * w, -h, 0.0, -h - 0.6]), dark));
            for i in 0..6 {
                let (gx, gy) = ((i % 2) as f64 - 0.5, (i / 2) as f64 - 1.0);
                parts.push((r(gx * w, gy * h * 0.55, 0.14 * w, 0.12 * h), accent));
            }
            parts
        }
        Kind::Creature => {
            let (hx, tip) = (0.85 * dir, -0.87 - 0.22 * form[2]);
            let ear = |k: f64| {
                t([
                    hx + 0.35 * k,
                    -0.45,
                    hx + 0.05 * k,
                    -0.55,
                    hx + 0.25 * k,
                    tip,
                ])
            };
            vec![
                (e(-dir, -0.1, 0.5, 0.16), dark),
                (r(-0.5, 0.65, 0.09, 0.3), dark),
                (r(0.5, 0.65, 0.09, 0.3), dark),
                (e(0.0, 0.15, 1.0, 0.5 + 0.2 * form[0]), body),
                (ear(-1.0), dark),
                (ear(1.0), dark),
                (e(hx, -0.35, 0.42, 0.38), light),
                (e(hx + 0.15 * dir, -0.4, 0.07, 0.07), accent),
            ]
        }
    }
}

/// Everything the drawing helpers need to know about the image being rendered.
pub(super) struct Look {
    pub(super) n: f64,
    pub(super) c: f64,
    pub(super) style: Style,
    pub(super) alpha: f64,
    pub(super) feather: f64,
}

impl Look {
    pub(super) fn new(n: f64, c: f64, style: Style) -> Look {
        let watercolor = style == Style::Watercolor;
        let (soft, alpha) = if watercolor { (0.012, 0.8) } else { (0.0, 1.0) };
        // Blur is one of the low-quality defects: edges soften quadratically as `c` drops.
        let feather = 1.0 + n * (0.035 * (1.0 - c) * (1.0 - c) + soft);
        Look {
            n,
            c,
            style,
            alpha,
            feather,
        }
    }

    pub(super) fn draw(&self, cv: &mut Canvas, parts: &[(Prim, Rgbf)], fade: f64) {
        for &(prim, rgb) in parts {
            let ink = Ink::new(rgb, self.alpha * fade, self.feather);
            let ink = Ink {
                shade: 0.4 * self.c,
                ..ink
            };
            if self.style == Style::Neon {
                let glow = Ink::new(rgb, 0.35 * fade, 0.05 * self.n).ring(0.004);
                cv.paint(&prim, Ink { add: true, ..glow });
                cv.paint(
                    &prim,
                    Ink {
                        rgb: scale(rgb, 0.2),
                        ..ink
                    },
                );
                cv.paint(&prim, ink.ring(0.003));
            } else {
                cv.paint(&prim, ink);
            }
        }
    }
}

/// Pixel art: block averages snapped to a 6-level-per-channel palette.
pub(super) fn pixelate(cv: &mut Canvas) {
    let n = cv.n;
    let b = (n / 32).max(1);
    for by in (0..n).step_by(b) {
        for bx in (0..n).step_by(b) {
            let (ys, xs) = (by..(by + b).min(n), bx..(bx + b).min(n));
            let mut sum = [0.0; 3];
            for y in ys.clone() {
                for p in &cv.px[y * n + xs.start..y * n + xs.end] {
                    sum = [sum[0] + p[0], sum[1] + p[1], sum[2] + p[2]];
                }
            }
            let cnt = (ys.len() * xs.len()) as f64;
            let avg = sum.map(|v| (v / cnt * 5.0 + 0.5).floor() / 5.0);
            for y in ys {
                cv.px[y * n + xs.start..y * n + xs.end].fill(avg);
            }
        }
    }
}

/// Style texture, then the low-quality finish: mud, grain and banding.
pub(super) fn finish(cv: &Canvas, style: Style, d: f64, salt: u64) -> RgbImage {
    let n = cv.n;
    let mud_k = 0.65 * d * (0.3 + 0.7 * d);
    let grain = 0.14 * d * d;
    // Banding and the float-to-byte conversion in one table; 4096 levels are finer than a byte.
    let step = 1.0 / 255.0 + 0.1 * d * d * d;
    let band = |i: u32| ((f64::from(i) / 4095.0 / step + 0.5).floor() * step).min(1.0);
    let mut lut = [0u8; 4096];
    for (i, out) in (0..).zip(&mut lut) {
        *out = (band(i) * 255.0 + 0.5) as u8;
    }
    let stroke = (n / 28).max(2);
    let mut img = RgbImage::new(n as u32, n as u32);
    for (x, y, out) in img.enumerate_pixels_mut() {
        let (x, y) = (x as usize, y as usize);
        let i = y * n + x;
        let p = match style {
            Style::Watercolor => {
                let paper =
                    0.04 * noise(x / 2, y / 2, 11).abs() + 0.05 * noise(x / 9, y / 9, salt).abs();
                scale(mix(cv.px[i], [1.0; 3], 0.15), 1.0 - paper)
            }
            Style::Oil => {
                // Staggered horizontal dabs read as brush strokes.
                let row = y / (stroke / 3).max(1);
                let jitter = ((noise(row, 0, salt) + 1.0) * stroke as f64) as usize;
                scale(
                    cv.px[i],
                    1.0 + 0.08 * noise((x + jitter) / stroke, row, salt ^ 3),
                )
            }
            _ => cv.px[i],
        };
        let p = mix(p, [0.5, 0.47, 0.4], mud_k);
        let r = noise4(x, y, salt ^ 1);
        for (k, o) in out.0.iter_mut().enumerate() {
            let v = (p[k] + grain * (r[3] + 0.5 * r[k])).clamp(0.0, 1.0);
            // Adding 2^52 leaves round(v * 4095) in the low mantissa bits: no saturating cast.
            *o = lut[((v * 4095.0 + 4_503_599_627_370_496.0).to_bits() & 4095) as usize];
        }
    }
    img
}
