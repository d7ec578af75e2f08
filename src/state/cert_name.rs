//! The subject of a DER X.509 certificate as an RFC 4514 string, for `client_cert_name` of the
//! ASGI `tls` extension. Only the few DER shapes a certificate's subject uses are read; anything
//! unexpected gives `None` rather than a guess.

/// One DER element: tag, contents, and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[count..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;

/// The short names RFC 4514 (and OpenSSL) use, by DER-encoded OID.
fn attribute_name(oid: &[u8]) -> Option<&'static str> {
    Some(match oid {
        [0x55, 0x04, 0x03] => "CN",
        [0x55, 0x04, 0x06] => "C",
        [0x55, 0x04, 0x07] => "L",
        [0x55, 0x04, 0x08] => "ST",
        [0x55, 0x04, 0x09] => "STREET",
        [0x55, 0x04, 0x0a] => "O",
        [0x55, 0x04, 0x0b] => "OU",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC",
        _ => return None,
    })
}

/// Dotted decimal form of an OID, for attributes without a short name.
fn dotted_oid(oid: &[u8]) -> Option<String> {
    let (&first, rest) = oid.split_first()?;
    let mut parts = vec![u64::from(first / 40).min(2), 0];
    parts[1] = u64::from(first) - parts[0] * 40;
    let mut value: u64 = 0;
    for &b in rest {
        value = value.checked_mul(128)? | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            parts.push(value);
            value = 0;
        }
    }
    Some(
        parts
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// An attribute value as RFC 4514 text: strings escaped, other types as `#` and their DER in hex.
fn attribute_value(tag: u8, contents: &[u8], whole: &[u8]) -> String {
    // UTF8String, PrintableString, T61String, IA5String, VisibleString
    let text = match tag {
        0x0c | 0x13 | 0x14 | 0x16 | 0x1a => std::str::from_utf8(contents).ok(),
        _ => None,
    };
    let Some(text) = text else {
        let hex: String = whole.iter().map(|b| format!("{b:02x}")).collect();
        return format!("#{hex}");
    };
    let mut out = String::with_capacity(text.len());
    let last = text.chars().count().saturating_sub(1);
    for (i, c) in text.chars().enumerate() {
        let escape = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if escape {
            out.push('\\');
        }
        if c == '\0' {
            out.push_str("\\00");
        } else {
            out.push(c);
        }
    }
    out
}

/// `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version?, serial, signature algorithm,
/// issuer, validity, subject, ... } ... }`: the subject is the sixth field (fifth without version).
fn subject(cert: &[u8]) -> Option<&[u8]> {
    let (tag, cert_body, _) = element(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = element(cert_body)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    let (tag, _, after) = element(rest)?;
    if tag == 0xa0 {
        rest = after; // explicit version
    }
    for _ in 0..4 {
        rest = element(rest)?.2; // serial, signature, issuer, validity
    }
    let (tag, name, _) = element(rest)?;
    (tag == SEQUENCE).then_some(name)
}

/// RFC 4514 string of the certificate's subject: RDNs in reverse order, joined by `,`; the values of
/// a multi-valued RDN joined by `+`.
pub fn subject_rfc4514(cert: &[u8]) -> Option<String> {
    let mut rdns = Vec::new();
    let mut rest = subject(cert)?;
    while !rest.is_empty() {
        let (tag, set, after) = element(rest)?;
        if tag != SET {
            return None;
        }
        rest = after;
        let mut values = Vec::new();
        let mut inner = set;
        while !inner.is_empty() {
            let (tag, atv, next) = element(inner)?;
            if tag != SEQUENCE {
                return None;
            }
            inner = next;
            let (tag, oid, value_der) = element(atv)?;
            if tag != OID {
                return None;
            }
            let (value_tag, contents, _) = element(value_der)?;
            let name = match attribute_name(oid) {
                Some(name) => name.to_string(),
                None => dotted_oid(oid)?,
            };
            values.push(format!(
                "{name}={}",
                attribute_value(value_tag, contents, value_der)
            ));
        }
        rdns.push(values.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if contents.len() < 0x80 {
            out.push(contents.len() as u8);
        } else {
            out.push(0x82);
            out.extend_from_slice(&(contents.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(contents);
        out
    }

    fn rdn(oid: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
        let atv = [der(OID, oid), der(tag, value)].concat();
        der(SET, &der(SEQUENCE, &atv))
    }

    fn cert_with_subject(subject: &[u8]) -> Vec<u8> {
        let tbs = [
            der(0xa0, &der(0x02, &[2])),
            der(0x02, &[1]),
            der(SEQUENCE, &[]),
            der(SEQUENCE, &[]),
            der(SEQUENCE, &[]),
            der(SEQUENCE, subject),
            der(SEQUENCE, &[0; 200]),
        ]
        .concat();
        der(
            SEQUENCE,
            &[der(SEQUENCE, &tbs), der(SEQUENCE, &[])].concat(),
        )
    }

    #[test]
    fn reversed_rdns_with_escaping() {
        let subject = [
            rdn(&[0x55, 4, 6], 0x13, b"DE"),
            rdn(&[0x55, 4, 10], 0x0c, b"Acme, Inc"),
            rdn(&[0x55, 4, 3], 0x0c, b" client#1 "),
        ]
        .concat();
        assert_eq!(
            subject_rfc4514(&cert_with_subject(&subject)).as_deref(),
            Some("CN=\\ client#1\\ ,O=Acme\\, Inc,C=DE")
        );
    }

    #[test]
    fn unknown_oids_are_dotted_and_binary_values_hex() {
        let subject = rdn(
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 9, 1],
            0x04,
            b"\x01",
        );
        assert_eq!(
            subject_rfc4514(&cert_with_subject(&subject)).as_deref(),
            Some("1.2.840.113549.1.9.1=#040101")
        );
    }

    #[test]
    fn truncated_input_gives_none() {
        let cert = cert_with_subject(&rdn(&[0x55, 4, 3], 0x0c, b"x"));
        for cut in 0..cert.len() - 1 {
            let _ = subject_rfc4514(&cert[..cut]); // must not panic
        }
        assert_eq!(subject_rfc4514(b"\x30\x84\xff\xff\xff\xff"), None);
    }
}
