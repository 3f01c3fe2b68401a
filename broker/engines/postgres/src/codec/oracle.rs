//! Properties every decoder must hold on arbitrary input, shared by the cargo-fuzz targets
//! (`fuzz/`) and the randomized unit test, so the fuzz bodies are compiled and exercised on
//! every `cargo test`. A violated property panics: that is what a fuzzer looks for.
//!
//! Built only for tests and with the `fuzzing` feature.

use super::{
    Authentication, BackendMessage, MAX_LOGIN_MESSAGE, PasswordMessage, Query, SaslInitialResponse,
    SaslResponse, StartupPacket, Terminate, check_startup, parse,
};
use bytes::BytesMut;

/// Startup packets: no panic; every prefix of a complete packet is incomplete; what decodes
/// re-encodes to bytes that decode to the same value.
pub fn startup(data: &[u8]) {
    let Ok(Some(len)) = check_startup(data) else {
        return;
    };
    for n in 0..len {
        assert_eq!(
            check_startup(&data[..n]),
            Ok(None),
            "prefix {n} must be incomplete"
        );
    }
    if let Ok(packet) = StartupPacket::decode(&data[..len]) {
        let mut buf = BytesMut::new();
        assert!(
            packet.encode(&mut buf).is_ok(),
            "a decoded packet re-encodes"
        );
        assert_eq!(StartupPacket::decode(&buf).ok(), Some(packet), "round trip");
    }
}

/// Tagged messages: no decoder panics on any body; backend login messages that decode
/// round-trip through their encoders.
pub fn messages(data: &[u8]) {
    let Ok(Some(frame)) = parse(data, MAX_LOGIN_MESSAGE) else {
        return;
    };
    let body = frame.body;
    // Frontend `p` messages are typed by state, not by bytes: try them all.
    let _ = PasswordMessage::decode(body);
    let _ = SaslInitialResponse::decode(body);
    let _ = SaslResponse::decode(body);
    let _ = Query::decode(body);
    let _ = Terminate::decode(body);

    let Ok(msg) = BackendMessage::decode(frame.tag, body) else {
        return;
    };
    let mut buf = BytesMut::new();
    let encoded = match &msg {
        // Kept by code only; the body is deliberately not re-encoded.
        BackendMessage::Authentication(Authentication::Unsupported { .. }) => return,
        // Decoding is lossy (invalid UTF-8 is replaced), so only require that encoding works.
        BackendMessage::ErrorResponse(e) | BackendMessage::NoticeResponse(e) => {
            assert!(e.encode_error(&mut buf).is_ok(), "decoded fields re-encode");
            return;
        }
        BackendMessage::Authentication(a) => a.encode(&mut buf),
        BackendMessage::ParameterStatus(p) => p.encode(&mut buf),
        BackendMessage::BackendKeyData(k) => {
            k.encode(&mut buf);
            Ok(())
        }
        BackendMessage::ReadyForQuery(r) => {
            r.encode(&mut buf);
            Ok(())
        }
        BackendMessage::NegotiateProtocolVersion(n) => n.encode(&mut buf),
    };
    assert!(encoded.is_ok(), "a decoded message re-encodes");
    let again = parse(&buf, MAX_LOGIN_MESSAGE).ok().flatten();
    let back = again.and_then(|f| BackendMessage::decode(f.tag, f.body).ok());
    assert_eq!(back, Some(msg), "round trip");
}

/// Query-phase messages (what the enforcing proxy reads and rewrites): no decoder panics on
/// any body; a DataRow that decodes re-encodes to the same bytes; rewriting some of its values
/// (as masking does: a longer or shorter value, or NULL) gives a frame that decodes to exactly
/// the rewritten values.
pub fn query_messages(data: &[u8]) {
    use super::query;
    let Ok(Some(frame)) = parse(data, super::MAX_MESSAGE) else {
        return;
    };
    let body = frame.body;
    let _ = query::Parse::decode(body);
    let _ = query::Bind::decode(body);
    let _ = query::Target::decode(body, "Describe");
    let _ = query::execute_portal(body);
    let _ = query::function_call_oid(body);
    let _ = query::row_description(body);
    let Ok(values) = query::data_row(body) else {
        return;
    };
    let mut buf = BytesMut::new();
    assert!(
        query::encode_data_row(values.iter().copied(), &mut buf).is_ok(),
        "a decoded row re-encodes"
    );
    assert_eq!(&buf[5..], body, "a row re-encodes to the same bytes");
    // Mask every other value: lengthen it, or turn it into NULL.
    let longer: Vec<Vec<u8>> = values
        .iter()
        .map(|v| v.map(|v| [v, b"***"].concat()).unwrap_or_default())
        .collect();
    let rewritten: Vec<Option<&[u8]>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| match (i % 3, v) {
            (0, Some(_)) => Some(longer[i].as_slice()),
            (1, Some(_)) => None,
            _ => *v,
        })
        .collect();
    let mut out = BytesMut::new();
    assert!(query::encode_data_row(rewritten.iter().copied(), &mut out).is_ok());
    let frame = parse(&out, super::MAX_MESSAGE)
        .ok()
        .flatten()
        .expect("a rewritten row is one whole frame");
    assert_eq!(
        frame.total_len,
        out.len(),
        "the length field counts the new values"
    );
    assert_eq!(
        query::data_row(frame.body).ok(),
        Some(rewritten),
        "rewritten values read back"
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::codec::{BackendKeyData, ErrorFields, ParameterStatus, ReadyForQuery, Severity};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Valid messages to mutate: random bytes alone rarely get past the length check.
    fn seeds() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut push = |f: &dyn Fn(&mut BytesMut)| {
            let mut b = BytesMut::new();
            f(&mut b);
            out.push(b.to_vec());
        };
        push(&|b| StartupPacket::SslRequest.encode(b).unwrap());
        push(&|b| {
            StartupPacket::CancelRequest { pid: 1, key: 2 }
                .encode(b)
                .unwrap()
        });
        push(&|b| {
            StartupPacket::StartupMessage {
                params: vec![("user".into(), "u".into()), ("database".into(), "d".into())],
            }
            .encode(b)
            .unwrap();
        });
        push(&|b| {
            Authentication::Md5Password { salt: [1, 2, 3, 4] }
                .encode(b)
                .unwrap()
        });
        push(&|b| {
            Authentication::Sasl {
                mechanisms: vec!["SCRAM-SHA-256".into()],
            }
            .encode(b)
            .unwrap();
        });
        push(&|b| {
            ParameterStatus {
                name: "a".into(),
                value: "b".into(),
            }
            .encode(b)
            .unwrap();
        });
        push(&|b| BackendKeyData { pid: 1, key: 2 }.encode(b));
        push(&|b| ReadyForQuery::Idle.encode(b));
        push(&|b| {
            ErrorFields::new(Severity::Fatal, "28P01", "m")
                .encode_error(b)
                .unwrap();
        });
        push(&|b| crate::codec::query::Parse::encode("s1", "select $1", b).unwrap());
        push(&|b| {
            let values: [Option<&[u8]>; 4] = [Some(b"42"), None, Some(b""), Some(b"ada@x.io")];
            crate::codec::query::encode_data_row(values.into_iter(), b).unwrap();
        });
        push(&|b| {
            // RowDescription with one text column `email` of table 16384.
            b.extend_from_slice(
                b"T\0\0\0\x1e\0\x01email\0\0\0\x40\0\0\x02\0\0\0\x19\xff\xff\xff\xff\xff\xff\0\0",
            );
        });
        out
    }

    #[test]
    fn decoders_hold_their_properties_on_random_and_mutated_input() {
        let mut rng = StdRng::seed_from_u64(0x5eed);
        let seeds = seeds();
        for i in 0..50_000 {
            let data: Vec<u8> = if i % 2 == 0 {
                let len = rng.random_range(0..64);
                (0..len).map(|_| rng.random()).collect()
            } else {
                let mut d = seeds[rng.random_range(0..seeds.len())].clone();
                for _ in 0..rng.random_range(1..4) {
                    let at = rng.random_range(0..d.len());
                    match rng.random_range(0..3) {
                        0 => d[at] = rng.random(),
                        1 => d.truncate(at.max(1)),
                        _ => d.insert(at, rng.random()),
                    }
                }
                d
            };
            startup(&data);
            messages(&data);
            query_messages(&data);
        }
    }
}
