//! A FITS reader for cutouts: headers, image HDUs of any BITPIX, and their physical values.
//!
//! Our own code rather than a crate: a FITS header is a list of 80-character cards in 2880-byte
//! blocks, and what a cutout reader needs (BSCALE/BZERO, BLANK as NaN, skipping tables in
//! multi-extension files, reading HDU by HDU from plain or gzip-compressed files, and errors
//! that name the HDU instead of panicking) is short to write and easier to get exactly right
//! than to adapt.
//!
//! Values are returned in file order: row 0 is the first row stored (the bottom row in the
//! FITS display convention), as numpy and astropy return it.

use flate2::read::MultiGzDecoder;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Size of a FITS block; headers and data are padded to whole blocks.
const BLOCK: usize = 2880;
/// Size of one header card.
const CARD: usize = 80;
/// Most header blocks read for one HDU; a file without `END` in that many is not FITS.
const MAX_HEADER_BLOCKS: usize = 1000;
/// Largest data read for one cutout; anything bigger is not a cutout.
pub const MAX_IMAGE_BYTES: u64 = 1 << 30;

/// File name extensions read as FITS (compared case-insensitively), each also with `.gz`.
pub const FITS_EXTENSIONS: [&str; 3] = ["fits", "fit", "fts"];

/// True when `name` ends in a FITS extension, optionally followed by `.gz`, in any letter case.
pub fn is_fits_file_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let stem = lower.strip_suffix(".gz").unwrap_or(&lower);
    FITS_EXTENSIONS
        .iter()
        .any(|ext| stem.len() > ext.len() + 1 && stem.ends_with(&format!(".{ext}")))
}

/// Something wrong in one HDU of a file (the file itself is named by whoever reports it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitsError {
    /// Index of the HDU (0 for the primary).
    pub hdu: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HDU {}: {}", self.hdu, self.message)
    }
}

impl std::error::Error for FitsError {}

/// A header value.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Logical(bool),
    Integer(i64),
    Real(f64),
    Text(String),
    /// Undefined or of a kind cutouts do not need (complex numbers).
    Other,
}

/// The keyword cards of one header, in order.
#[derive(Debug, Clone, Default)]
struct Header {
    cards: Vec<(String, Value)>,
}

impl Header {
    fn get(&self, key: &str) -> Option<&Value> {
        self.cards.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn integer(&self, key: &str) -> Result<Option<i64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Integer(v)) => Ok(Some(*v)),
            Some(other) => Err(format!("{key} = {other:?} is not an integer")),
        }
    }

    fn real(&self, key: &str) -> Result<Option<f64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Integer(v)) => Ok(Some(*v as f64)),
            Some(Value::Real(v)) => Ok(Some(*v)),
            Some(other) => Err(format!("{key} = {other:?} is not a number")),
        }
    }

    fn text(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Value::Text(s)) => Some(s.as_str()),
            _ => None,
        }
    }
}

/// One header card: its keyword and value (`None` for commentary cards), or `END`.
#[derive(Debug)]
enum Card {
    End,
    Keyword(String, Option<Value>),
}

fn parse_card(card: &[u8]) -> Result<Card, String> {
    if let Some(bad) = card.iter().find(|b| !(0x20..=0x7e).contains(*b)) {
        return Err(format!("header holds byte {bad:#04x}, not ASCII text"));
    }
    // Printable ASCII was just checked, so this cannot fail; an error would still be reported.
    let text = std::str::from_utf8(card).map_err(|e| e.to_string())?;
    let keyword = text[..8].trim_end().to_string();
    if keyword == "END" {
        return Ok(Card::End);
    }
    if &text[8..10] != "= " {
        return Ok(Card::Keyword(keyword, None));
    }
    Ok(Card::Keyword(keyword, Some(parse_value(&text[10..]))))
}

fn parse_value(field: &str) -> Value {
    let field = field.trim_start();
    if let Some(rest) = field.strip_prefix('\'') {
        // A quote inside a string is written twice; trailing spaces are not significant.
        let mut out = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    out.push('\'');
                } else {
                    break;
                }
            } else {
                out.push(c);
            }
        }
        return Value::Text(out.trim_end().to_string());
    }
    let token = field.split('/').next().unwrap_or("").trim();
    match token {
        "T" => Value::Logical(true),
        "F" => Value::Logical(false),
        _ => {
            if let Ok(v) = token.parse::<i64>() {
                Value::Integer(v)
            } else if let Ok(v) = token.replace(['D', 'd'], "E").parse::<f64>() {
                Value::Real(v)
            } else {
                Value::Other
            }
        }
    }
}

/// One HDU's structure: enough to find, size and convert its data.
#[derive(Debug, Clone, PartialEq)]
pub struct Hdu {
    /// Index in the file (0 for the primary HDU).
    pub index: usize,
    /// `XTENSION` (`IMAGE`, `BINTABLE`, ...), `None` for the primary HDU.
    pub xtension: Option<String>,
    /// Bits per value: 8, 16, 32, 64 (integers), -32, -64 (IEEE floats).
    pub bitpix: i64,
    /// `NAXIS1`, `NAXIS2`, ... (columns first).
    pub axes: Vec<usize>,
    /// `BSCALE` (1 when absent).
    pub bscale: f64,
    /// `BZERO` (0 when absent).
    pub bzero: f64,
    /// `BLANK`: the stored integer meaning "no value".
    pub blank: Option<i64>,
    /// `EXTNAME`, when set and not empty.
    pub extname: Option<String>,
    /// Offset of the data in the (decompressed) file.
    pub data_start: u64,
    /// Bytes of data, without the padding to whole blocks.
    pub data_bytes: u64,
    random_groups: bool,
}

impl Hdu {
    /// True for image HDUs (the primary or an `IMAGE` extension) that hold data.
    pub fn is_image(&self) -> bool {
        let image_kind = match &self.xtension {
            None => !self.random_groups,
            Some(x) => x == "IMAGE",
        };
        image_kind && self.data_bytes > 0
    }

    /// `(bands, rows, columns)` of an image HDU: a 2-D image is one band, a 3-D cube's planes
    /// are bands, and further axes are allowed only with length 1.
    pub fn image_shape(&self) -> Result<(usize, usize, usize), FitsError> {
        let fail = |message: String| FitsError {
            hdu: self.index,
            message,
        };
        match self.axes.as_slice() {
            [w, h] => Ok((1, *h, *w)),
            [w, h, c, rest @ ..] if rest.iter().all(|&n| n == 1) => Ok((*c, *h, *w)),
            [_] => Err(fail("1-D data (NAXIS = 1) is not an image".to_string())),
            axes => Err(fail(format!(
                "{}-D data of shape {axes:?} (NAXIS1 first) is not a cutout: a 2-D image or a \
                 3-D cube of bands is expected",
                axes.len()
            ))),
        }
    }

    /// The data's size rounded up to whole blocks, as stored.
    fn padded_bytes(&self) -> u64 {
        self.data_bytes.div_ceil(BLOCK as u64) * BLOCK as u64
    }

    fn from_header(index: usize, header: &Header, data_start: u64) -> Result<Hdu, String> {
        let xtension = if index == 0 {
            match header.cards.first() {
                Some((k, Value::Logical(true))) if k == "SIMPLE" => None,
                Some((k, Value::Logical(false))) if k == "SIMPLE" => {
                    return Err("SIMPLE = F: the file does not follow the FITS standard".into());
                }
                _ => return Err("not a FITS file: it does not start with SIMPLE = T".into()),
            }
        } else {
            match header.cards.first() {
                Some((k, Value::Text(x))) if k == "XTENSION" => Some(x.clone()),
                _ => return Err("extension header does not start with XTENSION".into()),
            }
        };
        let bitpix = header
            .integer("BITPIX")?
            .ok_or_else(|| "BITPIX is missing".to_string())?;
        if ![8, 16, 32, 64, -32, -64].contains(&bitpix) {
            return Err(format!(
                "BITPIX {bitpix} is not one of 8, 16, 32, 64, -32, -64"
            ));
        }
        let naxis = header
            .integer("NAXIS")?
            .ok_or_else(|| "NAXIS is missing".to_string())?;
        if !(0..=999).contains(&naxis) {
            return Err(format!("NAXIS = {naxis} is outside 0..=999"));
        }
        let mut axes = Vec::with_capacity(naxis as usize);
        for n in 1..=naxis {
            let key = format!("NAXIS{n}");
            let length = header
                .integer(&key)?
                .ok_or_else(|| format!("NAXIS = {naxis} but {key} is missing"))?;
            let length =
                usize::try_from(length).map_err(|_| format!("{key} = {length} is negative"))?;
            axes.push(length);
        }
        let random_groups = xtension.is_none()
            && header.get("GROUPS") == Some(&Value::Logical(true))
            && axes.first() == Some(&0);
        let pcount = header.integer("PCOUNT")?.unwrap_or(0);
        let gcount = header.integer("GCOUNT")?.unwrap_or(1);
        let (pcount, gcount) = match (u64::try_from(pcount), u64::try_from(gcount)) {
            (Ok(p), Ok(g)) => (p, g),
            _ => return Err(format!("PCOUNT = {pcount}, GCOUNT = {gcount} is negative")),
        };
        let counted = if random_groups { &axes[1..] } else { &axes[..] };
        let values = if axes.is_empty() {
            Some(0)
        } else {
            counted
                .iter()
                .try_fold(1u64, |acc, &n| acc.checked_mul(n as u64))
                .and_then(|n| n.checked_add(pcount))
                .and_then(|n| n.checked_mul(gcount))
        };
        let data_bytes = values
            .and_then(|n| n.checked_mul(bitpix.unsigned_abs() / 8))
            .ok_or_else(|| format!("data size of axes {axes:?} overflows"))?;
        let extname = header
            .text("EXTNAME")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        Ok(Hdu {
            index,
            xtension,
            bitpix,
            axes,
            bscale: header.real("BSCALE")?.unwrap_or(1.0),
            bzero: header.real("BZERO")?.unwrap_or(0.0),
            blank: header.integer("BLANK")?,
            extname,
            data_start,
            data_bytes,
            random_groups,
        })
    }
}

/// One cutout's physical values, CHW, NaN where blank.
#[derive(Debug, Clone, PartialEq)]
pub struct FitsImage {
    /// `channels * height * width` values.
    pub data: Vec<f32>,
    /// Bands.
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

/// The bytes of a FITS file, plain or gzip-compressed, read forwards.
enum Stream {
    Plain(BufReader<File>),
    Gzip(BufReader<MultiGzDecoder<File>>),
}

/// Reads the HDUs of one file in order, skipping data it is not asked for.
pub struct FitsReader {
    path: PathBuf,
    stream: Stream,
    /// Offset of the next byte `stream` yields.
    position: u64,
    /// Offset of the next HDU's header.
    next_header: u64,
    next_index: usize,
}

impl FitsReader {
    /// Opens `path`; gzip compression is recognised by its magic bytes, whatever the name.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        Ok(FitsReader {
            stream: open_stream(&path)?,
            path,
            position: 0,
            next_header: 0,
            next_index: 0,
        })
    }

    /// The next HDU's header, or `None` after the last one. Bytes after the last HDU that do
    /// not start an extension are ignored, as the standard allows.
    pub fn next_hdu(&mut self) -> Result<Option<Hdu>, FitsError> {
        let index = self.next_index;
        let fail = |message: String| FitsError {
            hdu: index,
            message,
        };
        self.seek_to(self.next_header)
            .map_err(|e| fail(format!("cannot read: {e}")))?;
        let mut header = Header::default();
        let mut block = vec![0u8; BLOCK];
        let mut blocks = 0;
        'blocks: loop {
            let got = self
                .read_fully(&mut block)
                .map_err(|e| fail(format!("cannot read header: {e}")))?;
            if blocks == 0 && index > 0 && (got < 8 || &block[..8] != b"XTENSION") {
                return Ok(None);
            }
            if blocks == 0 && index == 0 && !block[..got].starts_with(b"SIMPLE  =") {
                return Err(fail(
                    "not a FITS file: it does not start with SIMPLE = T".to_string(),
                ));
            }
            if got < BLOCK {
                return Err(fail(format!(
                    "header truncated: the file ends {} bytes into header block {}",
                    got,
                    blocks + 1
                )));
            }
            blocks += 1;
            for card in block.chunks_exact(CARD) {
                match parse_card(card).map_err(fail)? {
                    Card::End => break 'blocks,
                    Card::Keyword(key, Some(value)) => header.cards.push((key, value)),
                    Card::Keyword(key, None) if header.cards.is_empty() => {
                        return Err(fail(format!(
                            "header starts with {key:?}, not a keyword with a value"
                        )));
                    }
                    Card::Keyword(..) => {}
                }
            }
            if blocks >= MAX_HEADER_BLOCKS {
                return Err(fail(format!(
                    "no END card in {MAX_HEADER_BLOCKS} header blocks"
                )));
            }
        }
        let hdu = Hdu::from_header(index, &header, self.position).map_err(fail)?;
        self.next_header = hdu.data_start + hdu.padded_bytes();
        self.next_index += 1;
        Ok(Some(hdu))
    }

    /// Reads the physical values of image `hdu` (returned by [`FitsReader::next_hdu`]).
    pub fn read_image(&mut self, hdu: &Hdu) -> Result<FitsImage, FitsError> {
        let fail = |message: String| FitsError {
            hdu: hdu.index,
            message,
        };
        let (channels, height, width) = hdu.image_shape()?;
        let bytes_per_value = hdu.bitpix.unsigned_abs() as usize / 8;
        let needed = channels
            .checked_mul(height)
            .and_then(|n| n.checked_mul(width))
            .and_then(|n| n.checked_mul(bytes_per_value))
            .filter(|&n| n as u64 <= hdu.data_bytes)
            .ok_or_else(|| {
                fail(format!(
                    "{} bytes of data cannot hold an image of axes {:?}",
                    hdu.data_bytes, hdu.axes
                ))
            })?;
        if hdu.data_bytes > MAX_IMAGE_BYTES {
            return Err(fail(format!(
                "{} bytes of data is more than the {MAX_IMAGE_BYTES}-byte limit for one cutout",
                hdu.data_bytes
            )));
        }
        self.seek_to(hdu.data_start)
            .map_err(|e| fail(format!("cannot read data: {e}")))?;
        let mut raw = vec![0u8; hdu.data_bytes as usize];
        let got = self
            .read_fully(&mut raw)
            .map_err(|e| fail(format!("cannot read data: {e}")))?;
        if got < raw.len() {
            return Err(fail(format!(
                "data truncated: {} bytes expected, the file ends after {got}",
                raw.len()
            )));
        }
        Ok(FitsImage {
            data: physical(&raw[..needed], hdu),
            channels,
            height,
            width,
        })
    }

    /// Moves to byte `offset`, forwards by reading or seeking, backwards by reopening.
    fn seek_to(&mut self, offset: u64) -> io::Result<()> {
        if offset < self.position {
            self.stream = open_stream(&self.path)?;
            self.position = 0;
        }
        if offset == self.position {
            return Ok(());
        }
        match &mut self.stream {
            Stream::Plain(file) => {
                file.seek(SeekFrom::Start(offset))?;
            }
            Stream::Gzip(gz) => {
                // Past the end is not an error here: the next read finds the end.
                io::copy(&mut gz.take(offset - self.position), &mut io::sink())?;
            }
        }
        self.position = offset;
        Ok(())
    }

    /// Fills `buf` as far as the file goes; returns the bytes read.
    fn read_fully(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            let n = match &mut self.stream {
                Stream::Plain(file) => file.read(&mut buf[filled..]),
                Stream::Gzip(gz) => gz.read(&mut buf[filled..]),
            };
            match n {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.position += filled as u64;
        Ok(filled)
    }
}

fn open_stream(path: &Path) -> io::Result<Stream> {
    let mut file = File::open(path)?;
    let mut magic = [0u8; 2];
    let got = file.read(&mut magic)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(if got == 2 && magic == [0x1f, 0x8b] {
        Stream::Gzip(BufReader::new(MultiGzDecoder::new(file)))
    } else {
        Stream::Plain(BufReader::new(file))
    })
}

/// Big-endian stored values to physical ones: `BZERO + BSCALE * stored`, with integer `BLANK`
/// values (and float NaN) as NaN.
fn physical(raw: &[u8], hdu: &Hdu) -> Vec<f32> {
    let (scale, zero) = (hdu.bscale, hdu.bzero);
    let identity = scale == 1.0 && zero == 0.0;
    let int = |v: i64| -> f32 {
        if hdu.blank == Some(v) {
            f32::NAN
        } else {
            (zero + scale * v as f64) as f32
        }
    };
    let float = |v: f64| -> f32 {
        if identity {
            v as f32
        } else {
            (zero + scale * v) as f32
        }
    };
    match hdu.bitpix {
        8 => raw.iter().map(|&b| int(i64::from(b))).collect(),
        16 => raw
            .chunks_exact(2)
            .map(|b| int(i64::from(i16::from_be_bytes([b[0], b[1]]))))
            .collect(),
        32 => raw
            .chunks_exact(4)
            .map(|b| int(i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))))
            .collect(),
        64 => raw
            .chunks_exact(8)
            .map(|b| int(i64::from_be_bytes(eight(b))))
            .collect(),
        -32 => raw
            .chunks_exact(4)
            .map(|b| float(f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]]))))
            .collect(),
        // Only -64 is left: BITPIX was checked when the header was read.
        _ => raw
            .chunks_exact(8)
            .map(|b| float(f64::from_be_bytes(eight(b))))
            .collect(),
    }
}

fn eight(b: &[u8]) -> [u8; 8] {
    [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(text: &str) -> Vec<u8> {
        format!("{text:<80}").into_bytes()
    }

    #[test]
    fn parses_card_values() {
        let value = |text: &str| match parse_card(&card(text)).unwrap() {
            Card::Keyword(_, v) => v,
            Card::End => None,
        };
        assert_eq!(
            value("SIMPLE  =                    T"),
            Some(Value::Logical(true))
        );
        assert_eq!(
            value("NAXIS1  =                  100 / width"),
            Some(Value::Integer(100))
        );
        assert_eq!(
            value("BSCALE  =              1.5D-01"),
            Some(Value::Real(0.15))
        );
        assert_eq!(
            value("EXTNAME = 'O''Brien  '         / quoted"),
            Some(Value::Text("O'Brien".to_string()))
        );
        assert_eq!(value("COMMENT = not a value card here"), Some(Value::Other));
        assert_eq!(value("HISTORY written by hand"), None);
        assert!(matches!(parse_card(&card("END")).unwrap(), Card::End));
        let mut bad = card("OBJECT  = 'x'");
        bad[20] = 0xe9;
        assert!(parse_card(&bad).unwrap_err().contains("0xe9"));
    }

    #[test]
    fn recognises_fits_names() {
        for name in ["a.fits", "b.FIT", "c.fts", "d.fits.gz", "e.FITS.GZ"] {
            assert!(is_fits_file_name(name), "{name}");
        }
        for name in ["a.png", "fits", ".fits", "b.fits.zip", "c.gz"] {
            assert!(!is_fits_file_name(name), "{name}");
        }
    }
}
