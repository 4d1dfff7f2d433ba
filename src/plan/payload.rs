//! `[payload]`: what is exchanged on each connection; resolved and checked here.

use super::{invalid, Bytes, CloseMode, Expect, Payload, PayloadKind, PayloadSection, PlanError};

/// `[payload]` with its defaults filled in; `external` is target.address (an external
/// server's reply length is unknown), `close` the client's close mode.
pub(super) fn resolve(
    p: &PayloadSection,
    external: &Option<String>,
    close: CloseMode,
) -> Result<Payload, PlanError> {
    let kind = p.kind.unwrap_or(PayloadKind::None);
    if kind != PayloadKind::Tcp {
        for (set, key, flag) in [
            (p.send.is_some(), "payload.send", "--send"),
            (p.expect.is_some(), "payload.expect", "--expect"),
            (p.response.is_some(), "payload.response", "--response"),
        ] {
            if set {
                return Err(invalid(
                    key,
                    flag,
                    format!("only applies to payload tcp (payload is {kind})"),
                ));
            }
        }
    }
    if kind != PayloadKind::Http && p.path.is_some() {
        return Err(invalid(
            "payload.path",
            "--path",
            format!("only applies to payload http (payload is {kind})"),
        ));
    }
    let response = p
        .response
        .clone()
        .unwrap_or_else(|| Bytes(b"ok\n".to_vec()));
    let expect = match (p.expect, &external, close) {
        (Some(e), _, _) => e,
        (None, _, CloseMode::Passive) => Expect::Eof,
        (None, None, _) => Expect::Bytes(response.0.len()),
        (None, Some(_), _) if kind != PayloadKind::Tcp => Expect::Eof,
        (None, Some(_), _) => {
            return Err(invalid(
                "payload.expect",
                "--expect",
                "against an external target portlab cannot know the reply's length; write a byte count or eof",
            ))
        }
    };
    let path = p.path.clone().unwrap_or_else(|| "/".to_string());
    if !path.starts_with('/')
        || path
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(invalid(
            "payload.path",
            "--path",
            format!("'{path}' is not a request path; write e.g. /health"),
        ));
    }
    Ok(Payload {
        kind,
        send: p.send.clone().unwrap_or_else(|| Bytes(b"hello\n".to_vec())),
        expect,
        response,
        path,
    })
}
