//! Temporary flat renderer until the procedural one lands.
use image::RgbImage;
pub struct SceneSpec<'a> {
    pub prompt: &'a str,
    pub seed: u64,
    pub quality: f64,
}
pub fn render_scene(spec: &SceneSpec<'_>, size: u32) -> RgbImage {
    let v = (spec.seed % 255) as u8;
    RgbImage::from_pixel(size, size, image::Rgb([v, v, (spec.quality * 10.0) as u8]))
}
pub fn repost_variant(original: &RgbImage, _seed: u64, size: u32) -> RgbImage {
    image::imageops::resize(original, size, size, image::imageops::FilterType::Triangle)
}
pub fn encode_png(img: &RgbImage) -> Result<Vec<u8>, image::ImageError> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)?;
    Ok(out.into_inner())
}
