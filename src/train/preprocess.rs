//! Image bytes to CLIP's input: decode under limits, resize the shortest side bicubically,
//! centre-crop, scale to [0, 1] and normalise with CLIP's channel means and deviations.

use image::imageops::FilterType;
use image::{DynamicImage, ImageReader, Limits, RgbImage};

pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// Largest picture decoded, per side; a decompression bomb is refused before allocation.
const MAX_SIDE: u32 = 8192;
const MAX_DECODE_BYTES: u64 = 512 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("undecodable image: {0}")]
    Decode(String),
    #[error("image of {width}x{height} is empty")]
    Empty { width: u32, height: u32 },
}

/// Decodes any supported format (sniffed from the bytes, never from a file name).
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, ImageError> {
    let mut reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Decode(e.to_string()))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    reader
        .decode()
        .map_err(|e| ImageError::Decode(e.to_string()))
}

/// CLIP's preprocessing: a `3 * size * size` channel-first buffer.
pub fn clip_pixels(image: &DynamicImage, size: u32) -> Result<Vec<f32>, ImageError> {
    let (width, height) = (image.width(), image.height());
    if width == 0 || height == 0 {
        return Err(ImageError::Empty { width, height });
    }
    let rgb = image.to_rgb8();
    // Shortest side to `size`, the other scaled to keep the aspect ratio (rounded like
    // torchvision's Resize), then the central `size` x `size` window.
    let (new_w, new_h) = if width <= height {
        let h = (size as f64 * height as f64 / width as f64).round() as u32;
        (size, h.max(size))
    } else {
        let w = (size as f64 * width as f64 / height as f64).round() as u32;
        (w.max(size), size)
    };
    let resized: RgbImage = if (new_w, new_h) == (width, height) {
        rgb
    } else {
        image::imageops::resize(&rgb, new_w, new_h, FilterType::CatmullRom)
    };
    let left = ((new_w - size) as f64 / 2.0).round() as u32;
    let top = ((new_h - size) as f64 / 2.0).round() as u32;
    let plane = (size * size) as usize;
    let mut out = vec![0f32; 3 * plane];
    for y in 0..size {
        for x in 0..size {
            let pixel = resized.get_pixel(left + x, top + y).0;
            let at = (y * size + x) as usize;
            for c in 0..3 {
                out[c * plane + at] = (pixel[c] as f32 / 255.0 - CLIP_MEAN[c]) / CLIP_STD[c];
            }
        }
    }
    Ok(out)
}

/// Decode and preprocess in one step.
pub fn preprocess(bytes: &[u8], size: u32) -> Result<Vec<f32>, ImageError> {
    clip_pixels(&decode(bytes)?, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalise(value: u8, channel: usize) -> f32 {
        (value as f32 / 255.0 - CLIP_MEAN[channel]) / CLIP_STD[channel]
    }

    #[test]
    fn crops_the_centre_and_normalises_each_channel() {
        // 6 wide, 4 high, size 4: no resize, the crop keeps columns 1..5.
        let image = RgbImage::from_fn(6, 4, |x, y| {
            image::Rgb([(x * 40) as u8, (y * 60) as u8, 200])
        });
        let out = clip_pixels(&DynamicImage::ImageRgb8(image), 4).unwrap();
        assert_eq!(out.len(), 3 * 16);
        // Red plane, first row: x = 1..5 -> 40, 80, 120, 160.
        let expected_red = [40u8, 80, 120, 160].map(|v| normalise(v, 0));
        for (got, want) in out[0..4].iter().zip(expected_red) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
        // Green plane, last row (y = 3 -> 180).
        assert!((out[16 + 12] - normalise(180, 1)).abs() < 1e-6);
        // Blue is constant.
        assert!(
            out[32..48]
                .iter()
                .all(|v| (v - normalise(200, 2)).abs() < 1e-6)
        );
        // Hand-computed anchors of the same values.
        assert!((out[0] - (40.0 / 255.0 - 0.481_454_66) / 0.268_629_54).abs() < 1e-6);
        assert!((out[32] - 1.363_793_8).abs() < 1e-5, "{}", out[32]);
    }

    #[test]
    fn resizes_the_shortest_side_and_keeps_uniform_colour() {
        let image = RgbImage::from_pixel(40, 20, image::Rgb([10, 128, 250]));
        let out = clip_pixels(&DynamicImage::ImageRgb8(image), 8).unwrap();
        assert_eq!(out.len(), 3 * 64);
        for (c, value) in [10u8, 128, 250].into_iter().enumerate() {
            let want = normalise(value, c);
            assert!(
                out[c * 64..(c + 1) * 64]
                    .iter()
                    .all(|v| (v - want).abs() < 0.02)
            );
        }
    }

    #[test]
    fn refuses_garbage_and_bombs() {
        assert!(preprocess(b"not an image", 8).is_err());
        assert!(preprocess(&[], 8).is_err());
        // A PNG header claiming 100000 x 100000 pixels.
        let mut png = Vec::new();
        png.extend_from_slice(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
        assert!(preprocess(&png, 8).is_err());
    }
}
