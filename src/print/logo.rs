//! A company's logo: a PNG (decoded, any transparency laid on white) or a JPEG (passed through to
//! the PDF as it is, after reading its size from the frame header). Anything else, or anything
//! larger than the limits, is refused.

use super::canvas::Raster;
use super::model::PrintError;

/// The largest logo file accepted.
pub const MAX_BYTES: usize = 512 * 1024;
/// The largest logo in pixels, each side.
pub const MAX_SIDE: u32 = 2000;

fn bad() -> PrintError {
    PrintError::BadLogo(MAX_BYTES)
}

/// The logo's size in pixels as uploaded (before any averaging down).
pub fn dimensions(bytes: &[u8]) -> Result<(u32, u32), PrintError> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        let info = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().map_err(|_| bad())?;
        let i = info.info();
        return Ok((i.width, i.height));
    }
    match jpeg(bytes)? {
        Raster::Jpeg { width, height, .. } => Ok((width, height)),
        _ => Err(bad()),
    }
}

/// Reads and checks a logo.
pub fn decode(bytes: &[u8]) -> Result<Raster, PrintError> {
    if bytes.len() > MAX_BYTES {
        return Err(bad());
    }
    let r = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        png(bytes)?
    } else if bytes.starts_with(&[0xFF, 0xD8]) {
        jpeg(bytes)?
    } else {
        return Err(bad());
    };
    let (w, h) = match &r {
        Raster::Samples { width, height, .. }
        | Raster::Jpeg { width, height, .. }
        | Raster::Bits { width, height, .. } => (*width, *height),
    };
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
        return Err(bad());
    }
    Ok(r)
}

fn png(bytes: &[u8]) -> Result<Raster, PrintError> {
    let mut d = png::Decoder::new_with_limits(std::io::Cursor::new(bytes), png::Limits { bytes: 64 << 20 });
    d.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = d.read_info().map_err(|_| bad())?;
    {
        let info = reader.info();
        if info.width > MAX_SIDE || info.height > MAX_SIDE {
            return Err(bad());
        }
    }
    let mut buf = vec![0u8; reader.output_buffer_size().ok_or_else(bad)?];
    let out = reader.next_frame(&mut buf).map_err(|_| bad())?;
    let data = &buf[..out.buffer_size()];
    let (channels, alpha) = match out.color_type {
        png::ColorType::Grayscale => (1u8, false),
        png::ColorType::GrayscaleAlpha => (1, true),
        png::ColorType::Rgb => (3, false),
        png::ColorType::Rgba => (3, true),
        png::ColorType::Indexed => return Err(bad()),
    };
    let stride = channels as usize + usize::from(alpha);
    let mut samples = Vec::with_capacity(out.width as usize * out.height as usize * channels as usize);
    for px in data.chunks_exact(stride) {
        let a = if alpha { px[stride - 1] as u32 } else { 255 };
        for &c in &px[..channels as usize] {
            // Over white: c·a + 255·(1 − a).
            samples.push(((c as u32 * a + 255 * (255 - a)) / 255) as u8);
        }
    }
    Ok(shrink(out.width, out.height, channels, samples))
}

/// The most pixels a logo keeps: its box is 110 × 60 pt, so 600 × 330 is above 400 dpi. A larger
/// image is averaged down by a whole factor (every PDF of the company carries it).
const KEEP: (u32, u32) = (600, 330);

fn shrink(width: u32, height: u32, channels: u8, data: Vec<u8>) -> Raster {
    let k = width.div_ceil(KEEP.0).max(height.div_ceil(KEEP.1)).max(1);
    if k == 1 {
        return Raster::Samples { width, height, channels, data };
    }
    let (w, h, c) = (width / k, height / k, channels as usize);
    let mut out = Vec::with_capacity((w * h) as usize * c);
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                let mut sum = 0u32;
                for dy in 0..k {
                    for dx in 0..k {
                        let i = (((y * k + dy) * width + x * k + dx) as usize) * c + ch;
                        sum += data.get(i).copied().unwrap_or(255) as u32;
                    }
                }
                out.push((sum / (k * k)) as u8);
            }
        }
    }
    Raster::Samples { width: w.max(1), height: h.max(1), channels, data: out }
}

/// Width, height and components from the first start-of-frame marker.
fn jpeg(bytes: &[u8]) -> Result<Raster, PrintError> {
    let mut i = 2;
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return Err(bad());
        }
        let marker = bytes[i + 1];
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        let sof = matches!(marker, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF);
        if sof {
            let seg = bytes.get(i + 4..i + 2 + len).ok_or_else(bad)?;
            if seg.len() < 6 {
                return Err(bad());
            }
            let height = u16::from_be_bytes([seg[1], seg[2]]) as u32;
            let width = u16::from_be_bytes([seg[3], seg[4]]) as u32;
            let channels = seg[5];
            if !matches!(channels, 1 | 3 | 4) {
                return Err(bad());
            }
            return Ok(Raster::Jpeg { width, height, channels, data: bytes.to_vec() });
        }
        i += 2 + len;
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_of(w: u32, h: u32, rgba: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut e = png::Encoder::new(&mut out, w, h);
            e.set_color(png::ColorType::Rgba);
            e.set_depth(png::BitDepth::Eight);
            let mut wr = e.write_header().unwrap();
            wr.write_image_data(rgba).unwrap();
        }
        out
    }

    #[test]
    fn png_logos_are_decoded_on_white_and_junk_is_refused() {
        let bytes = png_of(2, 1, &[255, 0, 0, 255, 0, 0, 0, 0]);
        let Raster::Samples { width, height, channels, data } = decode(&bytes).unwrap() else { panic!("samples") };
        assert_eq!((width, height, channels), (2, 1, 3));
        assert_eq!(data, vec![255, 0, 0, 255, 255, 255]);
        assert!(matches!(decode(b"GIF89a..."), Err(PrintError::BadLogo(_))));
        assert!(matches!(decode(&bytes[..20]), Err(PrintError::BadLogo(_))));
        assert!(matches!(decode(&vec![0xFF; MAX_BYTES + 1]), Err(PrintError::BadLogo(_))));
        assert!(matches!(decode(&[0xFF, 0xD8, 0xFF]), Err(PrintError::BadLogo(_))));
        // A large logo is averaged down to what its box can show.
        let big = png_of(1800, 600, &vec![128; 1800 * 600 * 4]);
        let Raster::Samples { width, height, data, .. } = decode(&big).unwrap() else { panic!("samples") };
        assert_eq!((width, height, data.len()), (600, 200, 600 * 200 * 3));
    }
}
