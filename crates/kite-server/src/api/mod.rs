//! The management API: ARM-shaped resources (`id`, `name`, `type`, `location`, `properties`) under
//! `/subscriptions/…`, and Graph-shaped directory objects under `/v1.0/…`. Handlers are thin:
//! extract, authorize, one store call, render.

pub mod aks;
pub mod auth;
pub mod authorization;
pub mod aws;
pub mod aws_users;
pub mod cloud;
pub mod directory;
pub mod doctor;
pub mod eks;
pub mod eks_clusters;
pub mod graph;
pub mod groups;
pub mod identities;
pub mod listing;
pub mod resources;
pub mod signing_keys;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::infra::error::ApiError;

/// `Json` whose rejection is an ARM error naming what is wrong with the body.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Body<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        // The rejection's status stays: 413 for a body over the limit, 415 without a JSON content type.
        ApiError::new(r.status(), "InvalidRequestContent", format!("The request content was invalid: {}", r.body_text()))
    }
}

/// A path whose segments did not parse (e.g. a key ID that is not a GUID) is an ARM error too, not
/// axum's plain text.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::new(r.status(), "InvalidRequestUri", format!("The request URI is invalid: {}", r.body_text()))
    }
}

/// Query parameters, with ARM's error shape when they do not parse.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::new(r.status(), "InvalidQueryParameterValue", format!("The query string is invalid: {}", r.body_text()))
    }
}

/// A JSON answer with a status, e.g. 201 for a create.
pub fn respond(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}
