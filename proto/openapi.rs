//! The OpenAPI 3.1 document of the JSON surface, generated from the descriptors at build time:
//! one `POST /leadrouter.v1.<Service>/<Method>` per unary method, its request and reply as JSON
//! schemas in the proto3 JSON mapping (lowerCamelCase names, 64-bit integers as strings, enums
//! by name, Timestamps as RFC 3339), and Connect's error body.

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorSet};
use serde_json::{Map, Value, json};

/// The package whose services and messages are documented.
const PACKAGE: &str = "leadrouter.v1";

fn lower_camel(name: &str) -> String {
    let mut out = String::new();
    let mut up = false;
    for c in name.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `.leadrouter.v1.Foo.Bar` → `leadrouter.v1.Foo.Bar` (the component name).
fn component(type_name: &str) -> String {
    type_name.trim_start_matches('.').to_string()
}

fn field_schema(f: &FieldDescriptorProto, maps: &Map<String, Value>) -> Value {
    let one = match f.r#type() {
        Type::Double | Type::Float => json!({"type": "number"}),
        Type::Int32 | Type::Sint32 | Type::Sfixed32 => {
            json!({"type": "integer", "format": "int32"})
        }
        Type::Uint32 | Type::Fixed32 => {
            json!({"type": "integer", "format": "int32", "minimum": 0, "maximum": 4294967295u64})
        }
        Type::Int64 | Type::Sint64 | Type::Sfixed64 => {
            json!({"type": "string", "format": "int64", "pattern": "^-?[0-9]{1,19}$"})
        }
        Type::Uint64 | Type::Fixed64 => {
            json!({"type": "string", "format": "uint64", "pattern": "^[0-9]{1,20}$"})
        }
        Type::Bool => json!({"type": "boolean"}),
        Type::String => json!({"type": "string"}),
        Type::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
        Type::Enum => json!({"$ref": format!("#/components/schemas/{}", component(f.type_name()))}),
        Type::Message | Type::Group => match f.type_name() {
            ".google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
            name => {
                if let Some(entry) = maps.get(&component(name)) {
                    return entry.clone();
                }
                json!({"$ref": format!("#/components/schemas/{}", component(name))})
            }
        },
    };
    if f.label() == Label::Repeated {
        json!({"type": "array", "items": one})
    } else {
        one
    }
}

fn message_schema(m: &DescriptorProto, maps: &Map<String, Value>) -> Value {
    let mut props = Map::new();
    for f in &m.field {
        let name = f.json_name.clone().unwrap_or_else(|| lower_camel(f.name()));
        props.insert(name, field_schema(f, maps));
    }
    json!({"type": "object", "properties": props, "additionalProperties": false})
}

/// Collects the messages (nested ones by their full name) and enums of `m` under `prefix`.
fn collect(
    prefix: &str,
    m: &DescriptorProto,
    messages: &mut Vec<(String, DescriptorProto)>,
    enums: &mut Map<String, Value>,
) {
    let name = format!("{prefix}.{}", m.name());
    for e in &m.enum_type {
        enums.insert(format!("{name}.{}", e.name()), enum_schema(e));
    }
    for n in &m.nested_type {
        collect(&name, n, messages, enums);
    }
    messages.push((name, m.clone()));
}

fn enum_schema(e: &prost_types::EnumDescriptorProto) -> Value {
    let names: Vec<&str> = e.value.iter().map(|v| v.name()).collect();
    json!({"type": "string", "enum": names})
}

pub fn document(fds: &FileDescriptorSet) -> Value {
    let mut messages = Vec::new();
    let mut schemas = Map::new();
    for f in fds.file.iter().filter(|f| f.package() == PACKAGE) {
        for e in &f.enum_type {
            schemas.insert(format!("{PACKAGE}.{}", e.name()), enum_schema(e));
        }
        for m in &f.message_type {
            collect(PACKAGE, m, &mut messages, &mut schemas);
        }
    }
    // Map fields: their entry messages become objects keyed by string.
    let mut maps = Map::new();
    for (name, m) in &messages {
        if m.options.as_ref().is_some_and(|o| o.map_entry()) {
            let value = m
                .field
                .iter()
                .find(|f| f.number() == 2)
                .expect("a map entry has a value");
            maps.insert(
                name.clone(),
                json!({"type": "object", "additionalProperties": field_schema(value, &Map::new())}),
            );
        }
    }
    for (name, m) in &messages {
        if !maps.contains_key(name) {
            schemas.insert(name.clone(), message_schema(m, &maps));
        }
    }
    schemas.insert(
        "connect.Error".into(),
        json!({
            "type": "object",
            "required": ["code"],
            "properties": {
                "code": {"type": "string", "enum": [
                    "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found",
                    "already_exists", "permission_denied", "resource_exhausted",
                    "failed_precondition", "aborted", "out_of_range", "unimplemented", "internal",
                    "unavailable", "data_loss", "unauthenticated"]},
                "message": {"type": "string"}
            }
        }),
    );
    let error = json!({"description": "A Connect error", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/connect.Error"}}}});
    let mut paths = Map::new();
    for f in fds.file.iter().filter(|f| f.package() == PACKAGE) {
        for s in &f.service {
            for m in s
                .method
                .iter()
                .filter(|m| !m.client_streaming() && !m.server_streaming())
            {
                let mut responses = Map::new();
                responses.insert(
                    "200".into(),
                    json!({"description": "The reply", "content": {"application/json": {
                        "schema": {"$ref": format!("#/components/schemas/{}", component(m.output_type()))}}}}),
                );
                for code in [
                    "400", "401", "403", "404", "409", "405", "413", "415", "429", "499", "500",
                    "501", "503", "504",
                ] {
                    responses.insert(code.into(), error.clone());
                }
                paths.insert(
                    format!("/{PACKAGE}.{}/{}", s.name(), m.name()),
                    json!({"post": {
                        "operationId": format!("{}.{}", s.name(), m.name()),
                        "tags": [s.name()],
                        "requestBody": {"required": true, "content": {"application/json": {
                            "schema": {"$ref": format!("#/components/schemas/{}", component(m.input_type()))}}}},
                        "responses": responses
                    }}),
                );
            }
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "leadrouter",
            "version": "v1",
            "description": "Every unary RPC of leadrouter.v1 as JSON over HTTP (Connect's unary protocol). Generated from the .proto files."
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"key": {"type": "http", "scheme": "bearer"}}
        },
        "security": [{"key": []}, {}]
    })
}
