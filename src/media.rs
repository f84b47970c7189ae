//! What an uploaded file is, judged by its bytes: the image types rim shows
//! inline (PNG, JPEG, GIF, WebP) are recognised by their magic numbers and
//! their pixel size read from their headers; everything else is what its
//! uploader said, and is only ever served as a download.
//!
//! A browser must never be told that bytes are an image when they are
//! something else (an HTML page claiming to be `image/png` is a stored-XSS
//! attempt), nor render anything but these four types inline: see
//! [`is_inline_image`] and the file route in `rest::files`.

/// A recognised image: its media type and, when the header says, its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Image {
    pub content_type: &'static str,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// The types served inline; every other type is served as an attachment.
pub const INLINE_IMAGES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

pub fn is_inline_image(content_type: &str) -> bool {
    INLINE_IMAGES.contains(&content_type)
}

/// Recognises PNG, JPEG, GIF and WebP from the first bytes of a file (the
/// first upload chunk is plenty: the sizes sit in the first few hundred
/// bytes, a JPEG's after its metadata segments).
pub fn sniff(head: &[u8]) -> Option<Image> {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        let (width, height) = if head.len() >= 24 && &head[12..16] == b"IHDR" {
            (be32(&head[16..20]), be32(&head[20..24]))
        } else {
            (None, None)
        };
        return Some(Image {
            content_type: "image/png",
            width,
            height,
        });
    }
    if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        let (width, height) = if head.len() >= 10 {
            (le16(&head[6..8]), le16(&head[8..10]))
        } else {
            (None, None)
        };
        return Some(Image {
            content_type: "image/gif",
            width,
            height,
        });
    }
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        let (width, height) = jpeg_size(head).map_or((None, None), |(w, h)| (w, h));
        return Some(Image {
            content_type: "image/jpeg",
            width,
            height,
        });
    }
    if head.len() >= 16 && &head[0..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        let (width, height) = webp_size(head).map_or((None, None), |(w, h)| (Some(w), Some(h)));
        return Some(Image {
            content_type: "image/webp",
            width,
            height,
        });
    }
    None
}

fn nonzero(v: u32) -> Option<u32> {
    (v > 0).then_some(v)
}

fn be32(b: &[u8]) -> Option<u32> {
    nonzero(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn le16(b: &[u8]) -> Option<u32> {
    nonzero(u32::from(u16::from_le_bytes([b[0], b[1]])))
}

/// Walks the JPEG segments up to the first start-of-frame marker, which
/// holds the height and width.
fn jpeg_size(b: &[u8]) -> Option<(Option<u32>, Option<u32>)> {
    let mut i = 2;
    loop {
        // Markers may be padded with any number of 0xFF bytes.
        if *b.get(i)? != 0xFF {
            return None;
        }
        while *b.get(i)? == 0xFF {
            i += 1;
        }
        let marker = *b.get(i)?;
        i += 1;
        match marker {
            // Standalone markers: no length.
            0x01 | 0xD0..=0xD7 => continue,
            // End of image or start of scan before any frame header.
            0xD9 | 0xDA => return None,
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]));
        if len < 2 {
            return None;
        }
        let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            // length(2) precision(1) height(2) width(2)
            let h = u16::from_be_bytes([*b.get(i + 3)?, *b.get(i + 4)?]);
            let w = u16::from_be_bytes([*b.get(i + 5)?, *b.get(i + 6)?]);
            return Some((nonzero(u32::from(w)), nonzero(u32::from(h))));
        }
        i += len;
    }
}

/// The canvas size of a WebP: from its VP8 (lossy), VP8L (lossless) or
/// VP8X (extended) chunk, whichever comes first.
fn webp_size(b: &[u8]) -> Option<(u32, u32)> {
    let chunk = b.get(12..16)?;
    let data = b.get(20..)?;
    let le24 = |d: &[u8]| u32::from(d[0]) | u32::from(d[1]) << 8 | u32::from(d[2]) << 16;
    let size = match chunk {
        b"VP8 " => {
            // frame tag(3), start code 9D 01 2A, then 14-bit width, height.
            let d = data.get(0..10)?;
            if d[3..6] != [0x9D, 0x01, 0x2A] {
                return None;
            }
            let w = u32::from(u16::from_le_bytes([d[6], d[7]]) & 0x3FFF);
            let h = u32::from(u16::from_le_bytes([d[8], d[9]]) & 0x3FFF);
            (w, h)
        }
        b"VP8L" => {
            // signature 0x2F, then 14 bits width-1, 14 bits height-1.
            let d = data.get(0..5)?;
            if d[0] != 0x2F {
                return None;
            }
            let bits = u32::from_le_bytes([d[1], d[2], d[3], d[4]]);
            ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
        }
        b"VP8X" => {
            // flags(4), then 24-bit canvas width-1 and height-1.
            let d = data.get(0..10)?;
            (le24(&d[4..7]) + 1, le24(&d[7..10]) + 1)
        }
        _ => return None,
    };
    (size.0 > 0 && size.1 > 0).then_some(size)
}

/// Checks a declared media type and returns it in canonical form: lowercase
/// `type/subtype`, parameters dropped. `None` when it is not one.
pub fn normalize_content_type(declared: &str) -> Option<String> {
    let essence = declared.split(';').next()?.trim().to_ascii_lowercase();
    let (kind, sub) = essence.split_once('/')?;
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    (token(kind) && token(sub)).then_some(essence)
}

/// The name to use when none was given.
pub fn default_name(id: Option<u64>, content_type: &str) -> String {
    let ext = extension(content_type);
    match id {
        Some(id) => format!("file-{id}.{ext}"),
        None => format!("file.{ext}"),
    }
}

/// A file name extension for a media type, for downloads without a name.
pub fn extension(content_type: &str) -> &'static str {
    match content_type {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/svg+xml" => "svg",
        "text/plain" => "txt",
        "text/html" => "html",
        "application/pdf" => "pdf",
        "application/json" => "json",
        "application/zip" => "zip",
        _ => "bin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG signature and IHDR chunk.
    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        b.extend_from_slice(&w.to_be_bytes());
        b.extend_from_slice(&h.to_be_bytes());
        b.extend_from_slice(&[8, 6, 0, 0, 0]);
        b
    }

    #[test]
    fn recognises_the_four_image_types_and_their_sizes() {
        let png = png(640, 480);
        assert_eq!(
            sniff(&png),
            Some(Image {
                content_type: "image/png",
                width: Some(640),
                height: Some(480)
            })
        );
        let gif = b"GIF89a\x20\x03\x58\x02\x00\x00".to_vec();
        assert_eq!(sniff(&gif).unwrap().width, Some(800));
        assert_eq!(sniff(&gif).unwrap().height, Some(600));
        // SOI, an APP0 segment, then SOF0 with height 300 and width 400.
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, 0xFF, 0xFF, 0xC0, 0x00, 0x11, 0x08,
            0x01, 0x2C, 0x01, 0x90, 0x03,
        ];
        let j = sniff(&jpeg).unwrap();
        assert_eq!(
            (j.content_type, j.width, j.height),
            ("image/jpeg", Some(400), Some(300))
        );
        let mut vp8x = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\x10\0\0\0".to_vec();
        vp8x.extend_from_slice(&[0x3F, 0x01, 0x00, 0xEF, 0x00, 0x00]);
        let w = sniff(&vp8x).unwrap();
        assert_eq!((w.width, w.height), (Some(320), Some(240)));
        let mut vp8l = b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x2F".to_vec();
        let bits: u32 = 99 | (49 << 14);
        vp8l.extend_from_slice(&bits.to_le_bytes());
        let w = sniff(&vp8l).unwrap();
        assert_eq!((w.width, w.height), (Some(100), Some(50)));
        let mut vp8 = b"RIFF\0\0\0\0WEBPVP8 \0\0\0\0".to_vec();
        vp8.extend_from_slice(&[0, 0, 0, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0xE0, 0x01]);
        let w = sniff(&vp8).unwrap();
        assert_eq!((w.width, w.height), (Some(640), Some(480)));
    }

    #[test]
    fn other_bytes_are_not_images() {
        assert_eq!(sniff(b"<html><script>alert(1)</script>"), None);
        assert_eq!(sniff(b"<svg xmlns='http://www.w3.org/2000/svg'/>"), None);
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"\x89PN"), None);
        // A truncated JPEG is still a JPEG, of unknown size.
        let j = sniff(&[0xFF, 0xD8, 0xFF, 0xE0]).unwrap();
        assert_eq!((j.width, j.height), (None, None));
    }

    #[test]
    fn content_types_are_checked_and_canonical() {
        assert_eq!(
            normalize_content_type("Text/HTML; charset=utf-8").as_deref(),
            Some("text/html")
        );
        assert_eq!(
            normalize_content_type("image/svg+xml").as_deref(),
            Some("image/svg+xml")
        );
        assert_eq!(normalize_content_type("nonsense"), None);
        assert_eq!(normalize_content_type("a/b c"), None);
        assert_eq!(normalize_content_type("text/\"html\""), None);
        assert!(is_inline_image("image/webp") && !is_inline_image("image/svg+xml"));
    }
}
