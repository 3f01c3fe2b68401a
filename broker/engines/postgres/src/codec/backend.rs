//! [`BackendMessage`]: every message a server may send before the session is relayed, so the
//! login code matches on one enum instead of on tag bytes.

use super::{
    Authentication, BackendKeyData, CodecError, ErrorFields, NegotiateProtocolVersion,
    ParameterStatus, ReadyForQuery, tag,
};

/// A backend message of the login phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendMessage {
    /// `R`: an authentication request or result.
    Authentication(Authentication),
    /// `S`: a run-time parameter's value.
    ParameterStatus(ParameterStatus),
    /// `K`: the cancellation key.
    BackendKeyData(BackendKeyData),
    /// `Z`: login complete, ready for a query.
    ReadyForQuery(ReadyForQuery),
    /// `E`: the login failed.
    ErrorResponse(ErrorFields),
    /// `N`: a warning or information.
    NoticeResponse(ErrorFields),
    /// `v`: the server speaks an older minor version or ignored protocol options.
    NegotiateProtocolVersion(NegotiateProtocolVersion),
}

impl BackendMessage {
    /// Decodes one frame's body by its tag. Tags not valid during login are invalid.
    pub fn decode(tag: u8, body: &[u8]) -> Result<Self, CodecError> {
        Ok(match tag {
            tag::AUTHENTICATION => Self::Authentication(Authentication::decode(body)?),
            tag::PARAMETER_STATUS => Self::ParameterStatus(ParameterStatus::decode(body)?),
            tag::BACKEND_KEY_DATA => Self::BackendKeyData(BackendKeyData::decode(body)?),
            tag::READY_FOR_QUERY => Self::ReadyForQuery(ReadyForQuery::decode(body)?),
            tag::ERROR_RESPONSE => Self::ErrorResponse(ErrorFields::decode(body)?),
            tag::NOTICE_RESPONSE => Self::NoticeResponse(ErrorFields::decode(body)?),
            tag::NEGOTIATE_PROTOCOL_VERSION => {
                Self::NegotiateProtocolVersion(NegotiateProtocolVersion::decode(body)?)
            }
            other => {
                return Err(CodecError::UnexpectedTag {
                    tag: other,
                    context: "during login",
                });
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn dispatches_on_the_tag() {
        assert_eq!(
            BackendMessage::decode(b'R', &[0, 0, 0, 0]).unwrap(),
            BackendMessage::Authentication(Authentication::Ok)
        );
        assert_eq!(
            BackendMessage::decode(b'Z', b"I").unwrap(),
            BackendMessage::ReadyForQuery(ReadyForQuery::Idle)
        );
        assert!(matches!(
            BackendMessage::decode(b'D', b""),
            Err(CodecError::UnexpectedTag { tag: b'D', .. })
        ));
    }
}
