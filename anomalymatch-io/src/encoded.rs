//! Recognising encoded image files by their first bytes, so that an item that is not an image
//! at all (an HTML error page saved as `.png`, a truncated write) is reported by the source that
//! holds it, named, before any decoding.

/// Checks that `bytes` start like a JPEG, PNG or TIFF file (the formats core decodes); otherwise
/// says, naming `origin`, what they start with.
pub(crate) fn check_image_bytes(bytes: &[u8], origin: &str) -> Result<(), String> {
    const SIGNATURES: [&[u8]; 4] = [
        b"\xff\xd8\xff",      // JPEG
        b"\x89PNG\r\n\x1a\n", // PNG
        b"II*\x00",           // TIFF, little-endian
        b"MM\x00*",           // TIFF, big-endian
    ];
    if SIGNATURES.iter().any(|s| bytes.starts_with(s)) {
        return Ok(());
    }
    let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    Err(format!(
        "{origin} is not a JPEG, PNG or TIFF file ({} bytes starting {})",
        bytes.len(),
        head.join(" ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_the_decoded_formats_and_names_the_rest() {
        assert!(check_image_bytes(b"\xff\xd8\xff\xe0rest", "a.jpg").is_ok());
        assert!(check_image_bytes(b"\x89PNG\r\n\x1a\nrest", "a.png").is_ok());
        assert!(check_image_bytes(b"II*\x00rest", "a.tif").is_ok());
        assert!(check_image_bytes(b"MM\x00*rest", "a.tif").is_ok());
        let err = check_image_bytes(b"<html>", "x.zip:a.png").unwrap_err();
        assert_eq!(
            err,
            "x.zip:a.png is not a JPEG, PNG or TIFF file (6 bytes starting 3c 68 74 6d 6c 3e)"
        );
        assert!(check_image_bytes(b"", "e.png").is_err());
    }
}
