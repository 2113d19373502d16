//! The admin API's presence-authorization endpoints (policy `ask`, see
//! [`crate::presence::decide`]), behind the same bearer token as the rest of the API:
//!
//! - `GET /presence/watchers?presentity=<uri>`: the presentity's watchers as JSON
//!   (`watcher`, `status` pending/active/terminated/none, `event` per RFC 3857 s4.7.1,
//!   `decision`, `watcher_adapter`, `expires_in`); with `&format=watcherinfo` the same
//!   as an RFC 3858 `application/watcherinfo+xml` document (full state).
//! - `POST /presence/decision` with a JSON body
//!   `{"presentity": "<uri>", "watcher": "<uri>", "decision": "allow"|"deny"|"reset"}`:
//!   the presentity's decision. 200 with `{"status": 200}` when done (durable), 400 for
//!   a malformed request, 503 past the cap on remembered decisions.
//!
//! Only presentities of the gateway's local domains have watchers decided here (404
//! otherwise).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use cpim_core::address::{percent_decode, Address};
use serde::Deserialize;

use super::{check, json, S};
use crate::presence::decide::Choice;

/// The largest decision body read.
const MAX_BODY: usize = 4096;

fn bad(msg: &str) -> Response {
    (StatusCode::BAD_REQUEST, format!("{msg}\n")).into_response()
}

/// The value of `name` in the query of `uri`, percent-decoded (`+` is a space).
fn query_param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| percent_decode(&v.replace('+', " ")).ok())?
    })
}

fn local_presentity(st: &super::AdminState, s: &str) -> Result<Address, Box<Response>> {
    let a = Address::parse(s.trim()).map_err(|e| Box::new(bad(&format!("presentity: {e}"))))?;
    if !st.table.is_local(&a.domain) {
        return Err(Box::new(
            (
                StatusCode::NOT_FOUND,
                "not a presentity of the gateway's local domains\n",
            )
                .into_response(),
        ));
    }
    Ok(a.bare())
}

/// `GET /presence/watchers`.
pub(super) async fn watchers(State(st): S, h: HeaderMap, uri: Uri) -> Response {
    if let Err(r) = check(&st, &h) {
        return *r;
    }
    let Some(p) = query_param(&uri, "presentity") else {
        return bad("the presentity query parameter is required");
    };
    let presentity = match local_presentity(&st, &p) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    match query_param(&uri, "format").as_deref() {
        None | Some("json") => json(serde_json::Value::Array(st.presence.watchers(&presentity))),
        Some("watcherinfo") => match st.presence.watcher_info_xml(&presentity) {
            Ok(xml) => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, cpim_core::watcherinfo::CONTENT_TYPE)],
                xml,
            )
                .into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        },
        Some(_) => bad("format is json or watcherinfo"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    presentity: String,
    watcher: String,
    decision: String,
}

/// `POST /presence/decision`.
pub(super) async fn decision(State(st): S, h: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = check(&st, &h) {
        return *r;
    }
    if body.len() > MAX_BODY {
        return (StatusCode::PAYLOAD_TOO_LARGE, "decision body too large\n").into_response();
    }
    let d: DecisionBody = match serde_json::from_slice(&body) {
        Ok(d) => d,
        Err(e) => return bad(&format!("decision body: {e}")),
    };
    let presentity = match local_presentity(&st, &d.presentity) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let watcher = match Address::parse(d.watcher.trim()) {
        Ok(a) => a.bare(),
        Err(e) => return bad(&format!("watcher: {e}")),
    };
    let Some(choice) = Choice::parse(&d.decision) else {
        return bad("decision is allow, deny or reset");
    };
    let status = st.presence.decide(&presentity, &watcher, choice).await;
    let code = StatusCode::from_u16(status.code.as_u16())
        .ok()
        .filter(|_| status.code.as_u16() != 200)
        .unwrap_or(StatusCode::OK);
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        format!(
            "{}\n",
            serde_json::json!({"status": status.code.as_u16(), "reason": status.reason})
        ),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_percent_decoded() {
        let uri: Uri = "/presence/watchers?format=json&presentity=sip%3Aalice%40sip.test"
            .parse()
            .unwrap();
        assert_eq!(
            query_param(&uri, "presentity").as_deref(),
            Some("sip:alice@sip.test")
        );
        assert_eq!(query_param(&uri, "format").as_deref(), Some("json"));
        assert_eq!(query_param(&uri, "missing"), None);
    }
}
