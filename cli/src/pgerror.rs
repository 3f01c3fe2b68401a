//! The one PostgreSQL message the CLI writes itself: a FATAL `ErrorResponse`, so that psql
//! shows why a tunnel was refused instead of "server closed the connection unexpectedly".

/// Encodes a FATAL ErrorResponse with SQLSTATE `code` and `message`.
pub fn fatal(code: &str, message: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(message.len() + 32);
    for (field, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', code),
        (b'M', message),
    ] {
        body.push(field);
        body.extend(value.bytes().filter(|b| *b != 0));
        body.push(0);
    }
    body.push(0);
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(b'E');
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_a_well_formed_error_response() {
        let bytes = super::fatal("28000", "token expired");
        assert_eq!(bytes[0], b'E');
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        assert_eq!(len + 1, bytes.len());
        assert!(bytes.ends_with(b"Mtoken expired\0\0"));
    }
}
