//! How a fuzz input is read: a mode byte, then fields separated by `0xFF` (a byte that never
//! occurs in UTF-8, so text fields stay readable in a hex dump and seeds are easy to write).

/// The field separator.
pub const SEP: u8 = 0xFF;

/// A fuzz input: `mode`, then fields; a field that is not there reads as empty.
pub struct Input<'a> {
    mode: u8,
    fields: std::slice::Split<'a, u8, fn(&u8) -> bool>,
}

fn is_sep(b: &u8) -> bool {
    *b == SEP
}

impl<'a> Input<'a> {
    /// `None` for the empty input.
    pub fn new(data: &'a [u8]) -> Option<Self> {
        let (&mode, rest) = data.split_first()?;
        Some(Self {
            mode,
            fields: rest.split(is_sep as fn(&u8) -> bool),
        })
    }

    /// The mode byte.
    pub fn mode(&self) -> u8 {
        self.mode
    }

    /// The next field's bytes.
    pub fn bytes(&mut self) -> &'a [u8] {
        self.fields.next().unwrap_or_default()
    }

    /// The next field as text (invalid UTF-8 becomes U+FFFD).
    pub fn text(&mut self) -> String {
        String::from_utf8_lossy(self.bytes()).into_owned()
    }

    /// The next field as text, `None` when the field is empty (an absent header, say).
    pub fn optional_text(&mut self) -> Option<String> {
        let bytes = self.bytes();
        (!bytes.is_empty()).then(|| String::from_utf8_lossy(bytes).into_owned())
    }

    /// The next field as a little-endian number (its first 8 bytes).
    pub fn number(&mut self) -> u64 {
        let mut buf = [0u8; 8];
        let bytes = self.bytes();
        let n = bytes.len().min(8);
        buf[..n].copy_from_slice(&bytes[..n]);
        u64::from_le_bytes(buf)
    }

    /// Every remaining field as text, at most `max` of them.
    pub fn texts(&mut self, max: usize) -> Vec<String> {
        self.fields
            .by_ref()
            .take(max)
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect()
    }
}

/// The input that [`Input`] reads back as `mode` and `fields` (for seeds and regressions).
pub fn encode(mode: u8, fields: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![mode];
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(SEP);
        }
        out.extend_from_slice(field);
    }
    out
}

/// `encode` for text fields.
pub fn encode_text(mode: u8, fields: &[&str]) -> Vec<u8> {
    let fields: Vec<&[u8]> = fields.iter().map(|f| f.as_bytes()).collect();
    encode(mode, &fields)
}

/// `n` as a number field.
pub fn number_field(n: u64) -> Vec<u8> {
    n.to_le_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_fields_read_back_in_order_and_missing_ones_are_empty() {
        let data = encode(3, &[b"a", b"", &number_field(258), "é".as_bytes()]);
        let mut input = Input::new(&data).expect("not empty");
        assert_eq!(input.mode(), 3);
        assert_eq!(input.text(), "a");
        assert_eq!(input.optional_text(), None);
        assert_eq!(input.number(), 258);
        assert_eq!(input.texts(8), vec!["é".to_string()]);
        assert_eq!(input.bytes(), b"");
        assert!(Input::new(&[]).is_none());
    }
}
