//! The management API: ARM-shaped resources (`id`, `name`, `type`, `location`, `properties`) under
//! `/subscriptions/…`, and Graph-shaped directory objects under `/v1.0/…`. Handlers are thin:
//! extract, authorize, one store call, render.

pub mod authorization;
pub mod aws;
pub mod directory;
pub mod eks;
pub mod groups;
pub mod identities;

use axum::extract::rejection::JsonRejection;
use axum::extract::FromRequest;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// `Json` whose rejection is an ARM error naming what is wrong with the body.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Body<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError::bad_request("InvalidRequestContent", format!("The request content was invalid: {}", r.body_text()))
    }
}

/// A JSON answer with a status, e.g. 201 for a create.
pub fn respond(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}
