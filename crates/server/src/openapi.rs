//! The OpenAPI 3.1 document, generated from the route table and the `wire` types'
//! schema derives (API.md §9.4).

use std::sync::OnceLock;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr, Required, Schema, ServerBuilder};
use utoipa::ToSchema;

use crate::routes::table::{Status, ROUTES};
use crate::AppState;

fn collect<T: ToSchema>(out: &mut Vec<(String, RefOr<Schema>)>) {
    out.push((T::name().to_string(), T::schema()));
    T::schemas(out);
}

fn schemas() -> Vec<(String, RefOr<Schema>)> {
    use wire::agents::*;
    use wire::error::{ErrorEnvelope, FlatError};
    use wire::tenancy::*;
    let mut out = Vec::new();
    collect::<Agent>(&mut out);
    collect::<AgentResponse>(&mut out);
    collect::<AgentListResponse>(&mut out);
    collect::<AgentCreateRequest>(&mut out);
    collect::<AgentUpdateRequest>(&mut out);
    collect::<AgentDeleteResponse>(&mut out);
    collect::<AgentAbilitiesResponse>(&mut out);
    collect::<AgentVersionsResponse>(&mut out);
    collect::<AgentVersionResponse>(&mut out);
    collect::<AgentVersion>(&mut out);
    collect::<AgentVersionChanges>(&mut out);
    collect::<TeamsResponse>(&mut out);
    collect::<OrganizationsResponse>(&mut out);
    collect::<ModelListResponse>(&mut out);
    collect::<wire::tools::ToolListResponse>(&mut out);
    collect::<ErrorEnvelope>(&mut out);
    collect::<FlatError>(&mut out);
    out
}

fn method(m: &str) -> HttpMethod {
    match m {
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "PATCH" => HttpMethod::Patch,
        "DELETE" => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

fn json_content(schema: &str) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(Ref::from_schema_name(schema))).build()
}

/// Builds the document for `public_url`.
pub fn build(public_url: &str) -> OpenApi {
    let mut paths = PathsBuilder::new();
    for spec in ROUTES {
        let legacy = spec.id.starts_with('L') || spec.id.starts_with('F') || spec.id.starts_with('E') && !spec.id.starts_with("EV");
        let error_schema = if legacy { "FlatError" } else { "ErrorEnvelope" };
        let mut ext = utoipa::openapi::extensions::ExtensionsBuilder::new().add("x-openloop-id", spec.id);
        match spec.status {
            Status::Later => ext = ext.add("x-openloop-status", "later"),
            Status::Pending => ext = ext.add("x-openloop-status", "not_implemented"),
            Status::Now => {}
        }
        let mut op = OperationBuilder::new().operation_id(Some(spec.id)).summary(Some(spec.summary)).extensions(Some(ext.build()));
        for seg in spec.path.split('/').filter(|s| s.starts_with('{')) {
            op =
                op.parameter(ParameterBuilder::new().name(seg.trim_matches(|c| c == '{' || c == '}')).parameter_in(ParameterIn::Path).required(Required::True));
        }
        if !spec.root {
            op = op.parameter(
                ParameterBuilder::new()
                    .name("x-auth-key")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some("Acting user id (not a key)")),
            );
            op = op.parameter(
                ParameterBuilder::new()
                    .name("team_id")
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some("Team scope (alias project_id)")),
            );
        }
        if let Some(req) = spec.request {
            op = op.request_body(Some(RequestBodyBuilder::new().content("application/json", json_content(req)).build()));
        }
        let ok = match (spec.status, spec.response) {
            (Status::Now, Some(resp)) => ResponseBuilder::new().description("Success").content("application/json", json_content(resp)).build(),
            _ => ResponseBuilder::new().description("Success").build(),
        };
        let status = if spec.status == Status::Now { spec.ok.to_string() } else { "501".to_string() };
        op = op.response(status, ok);
        op = op.response("default", ResponseBuilder::new().description("Error").content("application/json", json_content(error_schema)).build());
        paths = paths.path(spec.path, PathItem::new(method(spec.method), op.build()));
    }
    let mut components = ComponentsBuilder::new()
        .security_scheme("bearerAuth", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()))
        .security_scheme("apiKeyQuery", SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("api_key"))));
    for (name, schema) in schemas() {
        components = components.schema(name, schema);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Openloop API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some("Self-hosted Gumloop-compatible API. Paths are relative to the server URL (…/api/v1)."))
                .build(),
        )
        .servers(Some(vec![ServerBuilder::new().url(format!("{}/api/v1", public_url.trim_end_matches('/'))).build()]))
        .paths(paths.build())
        .components(Some(components.build()))
        .security(Some(vec![SecurityRequirement::new("bearerAuth", Vec::<String>::new()), SecurityRequirement::new("apiKeyQuery", Vec::<String>::new())]))
        .build()
}

static DOC: OnceLock<Value> = OnceLock::new();

pub async fn document(State(st): State<AppState>) -> Json<Value> {
    let doc = DOC.get_or_init(|| serde_json::to_value(build(&st.config.public_url)).unwrap_or_else(|_| json!({})));
    Json(doc.clone())
}
