//! JSON over HTTP for every unary RPC, as Connect's unary protocol speaks it: `POST
//! /leadrouter.v1.<Service>/<Method>` with `Content-Type: application/json`, bodies in the proto3
//! JSON mapping (the serde impls pbjson generates from the same `.proto` files as the gRPC types:
//! lowerCamelCase names, int64 as strings, enums by name, Timestamps in RFC 3339), errors as
//! Connect's JSON (`{"code": "invalid_argument", "message": …}`) with the matching HTTP status.
//!
//! It runs behind the same gate as gRPC (the path is the same, so the permission table, keys,
//! rates and limits are the same) and in front of the same services: the JSON request becomes
//! the method's protobuf message, is served by the tonic service in process, and its reply
//! becomes JSON again. Nothing here decides anything a gRPC call would not.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use leadrouter_proto::v1 as pb;
use prost::Message;
use tonic::Code;

/// The request's JSON as the method's protobuf message, and its reply's protobuf as JSON.
struct Method {
    path: &'static str,
    request: fn(&[u8]) -> Result<Vec<u8>, String>,
    reply: fn(&[u8]) -> Result<Vec<u8>, String>,
}

fn request<T: Message + serde::de::DeserializeOwned>(json: &[u8]) -> Result<Vec<u8>, String> {
    let body = if json.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        json
    };
    let m: T = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(m.encode_to_vec())
}

fn reply<T: Message + Default + serde::Serialize>(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let m = T::decode(bytes).map_err(|e| e.to_string())?;
    serde_json::to_vec(&m).map_err(|e| e.to_string())
}

macro_rules! methods {
    ($($path:literal => $req:ty, $resp:ty;)*) => {
        const METHODS: &[Method] = &[$(Method {
            path: $path,
            request: request::<$req>,
            reply: reply::<$resp>,
        },)*];
    };
}

methods! {
    "/leadrouter.v1.LeadRouter/Route" => pb::RouteRequest, pb::RouteResponse;
    "/leadrouter.v1.LeadRouter/Ping" => pb::PingRequest, pb::PingResponse;
    "/leadrouter.v1.LeadRouter/RespondToOffer" => pb::RespondToOfferRequest, pb::RouteResponse;
    "/leadrouter.v1.Catalog/GetNetwork" => pb::GetNetworkRequest, pb::GetNetworkResponse;
    "/leadrouter.v1.Catalog/ListStores" => pb::ListStoresRequest, pb::ListStoresResponse;
    "/leadrouter.v1.Catalog/GetGuideLoad" => pb::GetGuideLoadRequest, pb::GuideLoad;
    "/leadrouter.v1.Catalog/UpsertStore" => pb::UpsertStoreRequest, pb::CatalogChangeResponse;
    "/leadrouter.v1.Catalog/UpsertGuide" => pb::UpsertGuideRequest, pb::CatalogChangeResponse;
    "/leadrouter.v1.Catalog/SetGuideStatus" => pb::SetGuideStatusRequest, pb::CatalogChangeResponse;
    "/leadrouter.v1.Catalog/ListAudit" => pb::ListAuditRequest, pb::ListAuditResponse;
    "/leadrouter.v1.Catalog/TransferMembers" => pb::TransferMembersRequest, pb::TransferMembersResponse;
    "/leadrouter.v1.Attribution/RecordTouch" => pb::RecordTouchRequest, pb::RecordTouchResponse;
    "/leadrouter.v1.Attribution/RecordOrder" => pb::RecordOrderRequest, pb::RecordOrderResponse;
    "/leadrouter.v1.Attribution/RecordRefund" => pb::RecordRefundRequest, pb::RecordRefundResponse;
    "/leadrouter.v1.Attribution/GetTrail" => pb::GetTrailRequest, pb::GetTrailResponse;
    "/leadrouter.v1.Attribution/GetOwnership" => pb::GetOwnershipRequest, pb::GetOwnershipResponse;
    "/leadrouter.v1.Attribution/VerifyTrail" => pb::VerifyTrailRequest, pb::VerifyTrailResponse;
    "/leadrouter.v1.Attribution/ListLedger" => pb::ListLedgerRequest, pb::ListLedgerResponse;
    "/leadrouter.v1.Attribution/GetBindingHistory" => pb::GetBindingHistoryRequest, pb::GetBindingHistoryResponse;
    "/leadrouter.v1.Disputes/OpenDispute" => pb::OpenDisputeRequest, pb::Dispute;
    "/leadrouter.v1.Disputes/ListDisputes" => pb::ListDisputesRequest, pb::ListDisputesResponse;
    "/leadrouter.v1.Disputes/GetDispute" => pb::GetDisputeRequest, pb::GetDisputeResponse;
    "/leadrouter.v1.Disputes/ResolveDispute" => pb::ResolveDisputeRequest, pb::Dispute;
    "/leadrouter.v1.Guides/ListGuideLeads" => pb::ListGuideLeadsRequest, pb::ListGuideLeadsResponse;
    "/leadrouter.v1.Guides/ListStoreQueue" => pb::ListStoreQueueRequest, pb::ListStoreQueueResponse;
    "/leadrouter.v1.Guides/ClaimQueuedLead" => pb::ClaimQueuedLeadRequest, pb::RouteResponse;
}

/// The unary methods served as JSON, by path.
pub fn paths() -> impl Iterator<Item = &'static str> {
    METHODS.iter().map(|m| m.path)
}

/// Whether `req` is a Connect unary call (JSON) rather than gRPC.
fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// Connect's HTTP status for a gRPC code.
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A Connect error reply.
pub(super) fn error(code: Code, message: impl Into<String>) -> Response {
    let body = serde_json::json!({
        "code": super::gate::connect_code(code),
        "message": message.into(),
    });
    (
        http_status(code),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Called by the gate once a call is admitted and is not gRPC: a JSON call to a unary method is
/// served as described above; anything else passes (pages, health, metrics).
pub async fn serve(max_message: usize, req: Request, next: Next) -> Response {
    let Some(method) = METHODS.iter().find(|m| m.path == req.uri().path()) else {
        return next.run(req).await;
    };
    if req.method() != axum::http::Method::POST {
        let mut r = error(
            Code::InvalidArgument,
            format!("{} takes POST with a JSON body", method.path),
        );
        *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    if !is_json(&req) {
        // Neither gRPC nor JSON: say so, rather than let gRPC answer a caller that cannot
        // read it (an empty 200).
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({
                "code": "invalid_argument",
                "message": format!(
                    "{} takes Content-Type: application/json (Connect) or application/grpc",
                    method.path
                ),
            })
            .to_string(),
        )
            .into_response();
    }
    let (parts, body) = req.into_parts();
    let json = match axum::body::to_bytes(body, max_message).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                Code::ResourceExhausted,
                "the request body is larger than limits.max_message_bytes",
            );
        }
    };
    let message = match (method.request)(&json) {
        Ok(m) => m,
        Err(why) => {
            return error(
                Code::InvalidArgument,
                format!("the body is not this method's request in the proto3 JSON mapping: {why}"),
            );
        }
    };
    // The same call as gRPC: one length-prefixed message.
    let mut framed = Vec::with_capacity(5 + message.len());
    framed.push(0);
    framed.extend_from_slice(
        &u32::try_from(message.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    framed.extend_from_slice(&message);
    let mut grpc = Request::new(Body::from(framed));
    *grpc.method_mut() = axum::http::Method::POST;
    *grpc.uri_mut() = parts.uri.clone();
    *grpc.version_mut() = axum::http::Version::HTTP_2;
    *grpc.extensions_mut() = parts.extensions;
    let h = grpc.headers_mut();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            h.append(name.clone(), value.clone());
        }
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert(header::TE, HeaderValue::from_static("trailers"));
    let response = next.run(grpc).await;
    let (head, body) = response.into_parts();
    let collected = match body.collect().await {
        Ok(c) => c,
        Err(e) => return error(Code::Internal, format!("reading the reply: {e}")),
    };
    let trailers = collected.trailers().cloned();
    let bytes = collected.to_bytes();
    let status = trailers
        .as_ref()
        .and_then(tonic::Status::from_header_map)
        .or_else(|| tonic::Status::from_header_map(&head.headers));
    if let Some(s) = status.filter(|s| s.code() != Code::Ok) {
        return error(s.code(), s.message());
    }
    let Some(payload) = bytes.get(5..) else {
        return error(Code::Internal, "the service answered without a message");
    };
    match (method.reply)(payload) {
        Ok(json) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            json,
        )
            .into_response(),
        Err(why) => error(Code::Internal, format!("encoding the reply: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every unary method of the contract is served as JSON.
    #[test]
    fn every_unary_method_is_served() {
        let fds =
            prost_types::FileDescriptorSet::decode(leadrouter_proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut want = Vec::new();
        for f in fds.file.iter().filter(|f| f.package() == "leadrouter.v1") {
            for s in &f.service {
                for m in &s.method {
                    if !m.client_streaming() && !m.server_streaming() {
                        want.push(format!("/{}.{}/{}", f.package(), s.name(), m.name()));
                    }
                }
            }
        }
        want.sort();
        let mut have: Vec<String> = paths().map(str::to_string).collect();
        have.sort();
        assert_eq!(have, want);
    }

    /// The OpenAPI document names every method served as JSON, with schemas for its request
    /// and reply, and nothing else.
    #[test]
    fn the_openapi_document_has_every_method() {
        let doc: serde_json::Value = serde_json::from_str(leadrouter_proto::OPENAPI_JSON).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        let mut documented: Vec<&str> = paths.keys().map(String::as_str).collect();
        documented.sort();
        let mut served: Vec<&str> = super::paths().collect();
        served.sort();
        assert_eq!(documented, served);
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for (path, item) in paths {
            let post = &item["post"];
            for r in [
                &post["requestBody"]["content"]["application/json"]["schema"]["$ref"],
                &post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            ] {
                let name = r
                    .as_str()
                    .unwrap()
                    .trim_start_matches("#/components/schemas/");
                assert!(schemas.contains_key(name), "{path}: {name}");
            }
        }
        let route = &schemas["leadrouter.v1.RouteRequest"]["properties"];
        assert_eq!(route["occurredAt"]["format"], "date-time");
        assert_eq!(route["leadId"]["type"], "string");
        let entry = &schemas["leadrouter.v1.LedgerEntry"]["properties"];
        assert_eq!(entry["amountCents"]["type"], "string", "int64 as a string");
        assert!(
            schemas["leadrouter.v1.Channel"]["enum"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v == "LIVESTREAM")
        );
    }

    #[test]
    fn json_is_the_proto3_mapping() {
        let pb = request::<pb::RouteRequest>(
            br#"{"leadId":"L1","memberId":"M1","channel":"LIVESTREAM","regionCode":"440106","occurredAt":"2026-12-01T10:00:00Z","maxAlternatives":2}"#,
        )
        .unwrap();
        let m = pb::RouteRequest::decode(pb.as_slice()).unwrap();
        assert_eq!(m.lead_id, "L1");
        assert_eq!(m.channel, pb::Channel::Livestream as i32);
        assert_eq!(m.occurred_at.unwrap().seconds, 1_796_119_200);
        let err = request::<pb::RouteRequest>(br#"{"leadId": 5}"#).unwrap_err();
        assert!(err.contains("leadId") || err.contains("string"), "{err}");
        assert!(
            request::<pb::PingRequest>(b"").is_ok(),
            "an empty body is {{}}"
        );
    }
}
