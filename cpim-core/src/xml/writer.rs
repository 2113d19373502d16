//! The escaping writer the document codecs write with, and the checks on the kept
//! extensions (unmodelled elements) they write back.

use super::chars::{escape_attr_into, escape_text_into};
use super::error::EncodeError;
use super::reader::parse;

/// An escaping writer for the codecs. Elements are opened with [`Writer::open`],
/// attributes added with [`Writer::attr`], and closed with [`Writer::close`]; a start
/// tag is finished lazily, so an element without content becomes `<x/>`.
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
    open: Vec<&'static str>,
    tag_pending: bool,
}

impl Writer {
    /// A writer that starts with the XML declaration.
    pub fn new() -> Writer {
        let mut out = String::with_capacity(512);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        Writer {
            out,
            open: Vec::with_capacity(8),
            tag_pending: false,
        }
    }

    fn finish_tag(&mut self) {
        if self.tag_pending {
            self.out.push('>');
            self.tag_pending = false;
        }
    }

    /// Opens element `qname` (written as given, e.g. `dm:person`).
    pub fn open(&mut self, qname: &'static str) -> &mut Self {
        self.finish_tag();
        self.out.push('<');
        self.out.push_str(qname);
        self.open.push(qname);
        self.tag_pending = true;
        self
    }

    /// Adds an attribute to the element just opened.
    pub fn attr(&mut self, qname: &str, value: &str) -> &mut Self {
        debug_assert!(self.tag_pending, "attribute after content");
        self.out.push(' ');
        self.out.push_str(qname);
        self.out.push_str("=\"");
        escape_attr_into(&mut self.out, value);
        self.out.push('"');
        self
    }

    /// Adds an attribute if `value` is `Some`.
    pub fn attr_opt(&mut self, qname: &str, value: Option<&str>) -> &mut Self {
        if let Some(v) = value {
            self.attr(qname, v);
        }
        self
    }

    /// Writes escaped text.
    pub fn text(&mut self, text: &str) -> &mut Self {
        self.finish_tag();
        escape_text_into(&mut self.out, text);
        self
    }

    /// Writes markup that the caller guarantees is well-formed (a checked extension).
    pub fn raw(&mut self, xml: &str) -> &mut Self {
        self.finish_tag();
        self.out.push_str(xml);
        self
    }

    /// Closes the innermost open element.
    pub fn close(&mut self) -> &mut Self {
        let name = self.open.pop().unwrap_or("");
        if self.tag_pending {
            self.out.push_str("/>");
            self.tag_pending = false;
        } else {
            self.out.push_str("</");
            self.out.push_str(name);
            self.out.push('>');
        }
        self
    }

    /// `<qname>text</qname>`.
    pub fn text_element(&mut self, qname: &'static str, text: &str) -> &mut Self {
        self.open(qname).text(text).close()
    }

    /// `<qname/>`.
    pub fn empty(&mut self, qname: &'static str) -> &mut Self {
        self.open(qname).close()
    }

    /// Closes everything still open and returns the document.
    pub fn finish(mut self) -> String {
        while !self.open.is_empty() {
            self.close();
        }
        self.out
    }
}

/// Checks that `xml` (a kept extension) is exactly one well-formed element outside
/// namespace `container_ns` (any namespace if it is empty), so it can be written where
/// a `##other` (or `##any`) wildcard is.
pub(crate) fn check_extension(
    xml: &str,
    container_ns: &str,
    context: &'static str,
    index: usize,
) -> Result<(), EncodeError> {
    let fail = |reason: String| EncodeError::InvalidExtension {
        context,
        index,
        reason,
    };
    if xml.trim_start().starts_with("<?xml") {
        return Err(fail(
            "an XML declaration is not allowed in an extension".into(),
        ));
    }
    let el = parse(xml.as_bytes()).map_err(|e| fail(e.to_string()))?;
    if !container_ns.is_empty() && el.ns == container_ns {
        return Err(fail(format!(
            "element {} is in the namespace of <{context}> itself",
            el.name
        )));
    }
    Ok(())
}

/// Writes checked extensions.
pub(crate) fn write_extensions(
    w: &mut Writer,
    exts: &[String],
    container_ns: &str,
    context: &'static str,
) -> Result<(), EncodeError> {
    for (i, x) in exts.iter().enumerate() {
        check_extension(x, container_ns, context, i)?;
        w.raw(x);
    }
    Ok(())
}

/// Formats a qvalue (`0` to `1` with at most three decimals; RFC 3863 `qvalue`).
pub(crate) fn format_qvalue(q: f32) -> String {
    let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
    let mut s = format!("{q:.3}");
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.pop();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qvalues_match_the_pidf_pattern() {
        assert_eq!(format_qvalue(0.8), "0.8");
        assert_eq!(format_qvalue(1.0), "1");
        assert_eq!(format_qvalue(0.0), "0");
        assert_eq!(format_qvalue(0.1234), "0.123");
        assert_eq!(format_qvalue(7.0), "1");
        assert_eq!(format_qvalue(f32::NAN), "0");
    }
}
