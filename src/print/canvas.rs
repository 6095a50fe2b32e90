//! A few drawing operations on PDF pages (pdf-writer), in points from the top-left corner: text
//! (left, right-aligned, centred), boxes, rules and 1-bit or RGB/gray images. Nothing here knows
//! what a DTE is; the layouts do.

use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str};

use super::fonts::{self, Font};

/// A raster image to place: 1-bit gray (the timbre), 8-bit gray or RGB (a decoded logo), or a JPEG
/// passed through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raster {
    /// Rows packed MSB first, 0 = black.
    Bits {
        width: u32,
        height: u32,
        data: Vec<u8>,
    },
    /// 8-bit samples, 1 (gray) or 3 (RGB) per pixel.
    Samples {
        width: u32,
        height: u32,
        channels: u8,
        data: Vec<u8>,
    },
    Jpeg {
        width: u32,
        height: u32,
        channels: u8,
        data: Vec<u8>,
    },
}

pub struct Page {
    pub width: f32,
    pub height: f32,
    content: Content,
    images: Vec<usize>,
}

impl Page {
    pub fn new(width: f32, height: f32) -> Page {
        Page { width, height, content: Content::new(), images: Vec::new() }
    }

    fn y(&self, top: f32) -> f32 {
        self.height - top
    }

    /// `s` with its baseline at `y` (from the top), starting at `x`.
    pub fn text(&mut self, font: Font, size: f32, x: f32, y: f32, s: &str) {
        let bytes = fonts::encode(s);
        let y = self.y(y);
        self.content.begin_text().set_font(Name(font.resource()), size).next_line(x, y).show(Str(&bytes)).end_text();
    }

    pub fn text_right(&mut self, font: Font, size: f32, right: f32, y: f32, s: &str) {
        self.text(font, size, right - fonts::width(font, size, s), y, s);
    }

    pub fn text_center(&mut self, font: Font, size: f32, center: f32, y: f32, s: &str) {
        self.text(font, size, center - fonts::width(font, size, s) / 2.0, y, s);
    }

    /// A rectangle's outline; `rgb` is its colour.
    pub fn frame(&mut self, x: f32, y: f32, w: f32, h: f32, line: f32, rgb: [f32; 3]) {
        let top = self.y(y + h);
        self.content
            .save_state()
            .set_line_width(line)
            .set_stroke_rgb(rgb[0], rgb[1], rgb[2])
            .rect(x, top, w, h)
            .stroke()
            .restore_state();
    }

    pub fn fill(&mut self, x: f32, y: f32, w: f32, h: f32, gray: f32) {
        let top = self.y(y + h);
        self.content.save_state().set_fill_gray(gray).rect(x, top, w, h).fill_nonzero().restore_state();
    }

    pub fn rule(&mut self, x1: f32, x2: f32, y: f32, line: f32) {
        let y = self.y(y);
        self.content.save_state().set_line_width(line).move_to(x1, y).line_to(x2, y).stroke().restore_state();
    }

    /// `s` in large light letters across the page (e.g. "NO VÁLIDO"), rotated 30°.
    pub fn watermark(&mut self, s: &str) {
        let size = self.width / 9.0;
        let w = fonts::width(Font::Bold, size, s);
        let (c, sn) = (30f32.to_radians().cos(), 30f32.to_radians().sin());
        let (cx, cy) = (self.width / 2.0, self.height / 2.0);
        let x = cx - w / 2.0 * c;
        let y = cy - w / 2.0 * sn;
        let bytes = fonts::encode(s);
        self.content
            .save_state()
            .set_fill_rgb(0.85, 0.1, 0.1)
            .begin_text()
            .set_font(Name(Font::Bold.resource()), size)
            .set_text_matrix([c, sn, -sn, c, x, y])
            .show(Str(&bytes))
            .end_text()
            .restore_state();
    }

    /// Draws image number `index` of the document at `x`, `y` (top-left), `w` × `h` points.
    pub fn image(&mut self, index: usize, x: f32, y: f32, w: f32, h: f32) {
        if !self.images.contains(&index) {
            self.images.push(index);
        }
        let name = format!("Im{index}");
        let bottom = self.y(y + h);
        self.content
            .save_state()
            .transform([w, 0.0, 0.0, h, x, bottom])
            .x_object(Name(name.as_bytes()))
            .restore_state();
    }
}

/// Writes the pages and images into one PDF. Nothing time-dependent is written, so the same pages
/// give the same bytes.
pub fn finish(pages: Vec<Page>, images: &[Raster], title: &str) -> Vec<u8> {
    let mut pdf = Pdf::new();
    let mut next = 1;
    let mut alloc = || {
        let r = Ref::new(next);
        next += 1;
        r
    };
    let catalog = alloc();
    let tree = alloc();
    let info = alloc();
    let regular = alloc();
    let bold = alloc();
    let image_ids: Vec<Ref> = images.iter().map(|_| alloc()).collect();
    let page_ids: Vec<(Ref, Ref)> = pages.iter().map(|_| (alloc(), alloc())).collect();

    pdf.catalog(catalog).pages(tree);
    pdf.document_info(info).title(pdf_writer::TextStr(title)).producer(pdf_writer::TextStr("dte-gateway"));
    pdf.pages(tree).kids(page_ids.iter().map(|(p, _)| *p)).count(page_ids.len() as i32);
    for (font, id) in [(Font::Regular, regular), (Font::Bold, bold)] {
        pdf.type1_font(id).base_font(Name(font.base_name())).encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    for (raster, id) in images.iter().zip(&image_ids) {
        match raster {
            Raster::Bits { width, height, data } => {
                let mut x = pdf.image_xobject(*id, data);
                x.width(*width as i32).height(*height as i32).bits_per_component(1).interpolate(false);
                x.color_space().device_gray();
                x.finish();
            }
            Raster::Samples { width, height, channels, data } => {
                let packed = miniz_oxide::deflate::compress_to_vec_zlib(data, 6);
                let mut x = pdf.image_xobject(*id, &packed);
                x.filter(Filter::FlateDecode);
                x.width(*width as i32).height(*height as i32).bits_per_component(8).interpolate(true);
                if *channels == 3 {
                    x.color_space().device_rgb();
                } else {
                    x.color_space().device_gray();
                }
                x.finish();
            }
            Raster::Jpeg { width, height, channels, data } => {
                let mut x = pdf.image_xobject(*id, data);
                x.filter(Filter::DctDecode);
                x.width(*width as i32).height(*height as i32).bits_per_component(8).interpolate(true);
                match channels {
                    1 => x.color_space().device_gray(),
                    4 => x.color_space().device_cmyk(),
                    _ => x.color_space().device_rgb(),
                };
                x.finish();
            }
        }
    }
    for (page, (page_id, content_id)) in pages.into_iter().zip(&page_ids) {
        let mut p = pdf.page(*page_id);
        p.parent(tree).media_box(Rect::new(0.0, 0.0, page.width, page.height)).contents(*content_id);
        let mut res = p.resources();
        res.fonts().pair(Name(Font::Regular.resource()), regular).pair(Name(Font::Bold.resource()), bold);
        if !page.images.is_empty() {
            let mut xo = res.x_objects();
            for i in &page.images {
                if let Some(id) = image_ids.get(*i) {
                    let name = format!("Im{i}");
                    xo.pair(Name(name.as_bytes()), *id);
                }
            }
            xo.finish();
        }
        res.finish();
        p.finish();
        let data = page.content.finish();
        pdf.stream(*content_id, &data);
    }
    pdf.finish()
}
