//! `[payload]`: what is exchanged on each connection; resolved and checked here.

use super::bounds::{self, MAX_PATH};
use super::{invalid, Bytes, CloseMode, Expect, Payload, PayloadKind, PlanError};
use serde::{Deserialize, Serialize};

super::scenario::section! {
    /// `[payload]`: what is exchanged on each connection (flags under "Payload").
    #[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, clap::Args)]
    #[serde(deny_unknown_fields)]
    pub struct PayloadSection in "payload" {
        /// none (connect, close), tcp (--send/--expect), http (GET --path) [key: payload.kind;
        /// default none].
        #[arg(long = "payload", value_name = "KIND")]
        pub kind: Option<PayloadKind>,
        /// tcp: bytes to send, as text or hex:0a0b.. [key: payload.send; default "hello\n"].
        #[arg(long, value_name = "BYTES")]
        pub send: Option<Bytes>
            where v => bounds::bytes(v.as_ref().map(|b| b.0.len())),
        /// tcp: bytes to read back before closing, or eof [key: payload.expect; default the
        /// reply's length].
        #[arg(long, allow_hyphen_values = true, value_name = "N|eof")]
        pub expect: Option<Expect>
            where v => match v {
                Some(Expect::Bytes(n)) => bounds::bytes(Some(*n)),
                _ => Ok(()),
            },
        /// tcp: the embedded server's reply [key: payload.response; default "ok\n"].
        #[arg(long, value_name = "BYTES")]
        pub response: Option<Bytes>
            where v => bounds::bytes(v.as_ref().map(|b| b.0.len())),
        /// http: request path [key: payload.path; default /].
        #[arg(long, value_name = "PATH")]
        pub path: Option<String>
            where v => bounds::range(v.as_ref().map(String::len), 1, MAX_PATH, " bytes"),
    }
}

/// `[payload]` with its defaults filled in; `external` is target.address (an external
/// server's reply length is unknown), `close` the client's close mode.
pub(super) fn resolve(
    p: &PayloadSection,
    external: &Option<String>,
    close: CloseMode,
) -> Result<Payload, PlanError> {
    let kind = p.kind.unwrap_or(PayloadKind::None);
    if kind != PayloadKind::Tcp {
        super::refuse_set(
            &[
                (p.send.is_some(), "payload.send", "--send"),
                (p.expect.is_some(), "payload.expect", "--expect"),
                (p.response.is_some(), "payload.response", "--response"),
            ],
            || format!("only applies to payload tcp (payload is {kind})"),
        )?;
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

/// `[payload]` as plan.toml writes it: the keys of its kind (a response only for the
/// embedded server, `external` false). Both structs are taken apart field by field, so a key
/// added to either is a compile error here until it is written.
pub(super) fn written(p: &Payload, external: bool) -> PayloadSection {
    let Payload {
        kind,
        send,
        expect,
        response,
        path,
    } = p;
    let tcp = *kind == PayloadKind::Tcp;
    PayloadSection {
        kind: Some(*kind),
        send: tcp.then(|| send.clone()),
        expect: tcp.then_some(*expect),
        response: (tcp && !external).then(|| response.clone()),
        path: (*kind == PayloadKind::Http).then(|| path.clone()),
    }
}
