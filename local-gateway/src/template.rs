//! Reads what the local gateway needs from template.yaml, so that local behaviour follows
//! the template: the stage, every API route and the function serving it, which routes opt
//! out of the authorizer, the authorizer's identity header, validation expression and cache
//! TTL, and the gateway responses.
//!
//! CloudFormation tags are understood as far as needed: a `!Ref` to a parameter resolves to
//! the parameter's default (or an override passed in), `!Ref AWS::NoValue` to nothing,
//! `!Sub` substitutes parameters, and `!If` evaluates the template's `Conditions`
//! (`!Equals`, `!Not`, `!And`, `!Or`, `!Condition`).

use serde_yaml::Value;
use std::collections::HashMap;

/// The API as the template declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiModel {
    pub stage: String,
    pub routes: Vec<TemplateRoute>,
    /// The default authorizer, if the API has one.
    pub authorizer: Option<AuthorizerModel>,
    /// Gateway responses by type (`UNAUTHORIZED`, `DEFAULT_4XX`, …).
    pub gateway_responses: HashMap<String, GatewayResponseModel>,
    /// `Globals.Function.Environment.Variables` whose values resolve without a deployed
    /// stack (literals and parameters); references to resources are left out.
    pub function_environment: HashMap<String, String>,
    /// The stage's `MethodSettings` that throttle.
    pub throttling: Vec<MethodThrottle>,
    /// The API's `Cors` (the OPTIONS preflight SAM generates for every path), if any.
    pub cors: Option<CorsModel>,
    /// The permissions document the template registers for this API: the value of an
    /// `AWS::SSM::Parameter` whose name ends with `/${<the API>}` (what the authorizer reads
    /// under its path, by the API's id).
    pub permissions_document: Option<String>,
}

/// SAM's `Cors` on the API, values resolved and unquoted. An unset `allow_origin` (CORS
/// off) still answers preflights, without granting any origin.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CorsModel {
    pub allow_origin: Option<String>,
    pub allow_headers: Option<String>,
    pub max_age: Option<String>,
}

/// One throttling entry of the stage's `MethodSettings`. As on API Gateway, the limits apply
/// to each method separately (every method has a bucket of its own); `/*` with `*` is the
/// default for every method, and a more specific entry overrides it for its method.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodThrottle {
    /// `/*`, or a resource path with `~1` decoded (`/token/refresh`).
    pub path: String,
    /// `*` or an upper-case method.
    pub method: String,
    /// `ThrottlingRateLimit`: tokens added per second.
    pub rate_per_sec: f64,
    /// `ThrottlingBurstLimit`: the bucket's size.
    pub burst: u64,
}

impl ApiModel {
    /// The throttling limits of `method` on `path` (a template path such as
    /// `/users/{id}`): the most specific matching `MethodSettings` entry, if any.
    pub fn throttle_for(&self, method: &str, path: &str) -> Option<&MethodThrottle> {
        let candidates = [(path, method), (path, "*"), ("/*", method), ("/*", "*")];
        candidates
            .into_iter()
            .find_map(|(wanted_path, wanted_method)| {
                self.throttling
                    .iter()
                    .find(|entry| entry.path == wanted_path && entry.method == wanted_method)
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRoute {
    /// Upper case (`GET`).
    pub method: String,
    /// As in the template (`/users/{id}`).
    pub path: String,
    /// The function's `BuildProperties.Binary` (`login`, `users`).
    pub function: String,
    /// False when the event sets `Auth: {Authorizer: NONE}`.
    pub authorized: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerModel {
    pub name: String,
    /// `Identity.Header` (default `Authorization`).
    pub header: String,
    /// `Identity.ValidationExpression`, if any.
    pub validation_expression: Option<String>,
    /// `Identity.ReauthorizeEvery` (default 300; 0 turns caching off).
    pub cache_ttl_secs: u64,
    /// The authorizer function's binary.
    pub function: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GatewayResponseModel {
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    /// The `application/json` response template.
    pub body_template: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("template.yaml is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("template.yaml: {0}")]
    Shape(String),
}

fn shape(message: impl Into<String>) -> TemplateError {
    TemplateError::Shape(message.into())
}

impl ApiModel {
    pub fn from_file(
        path: &std::path::Path,
        overrides: &HashMap<String, String>,
    ) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text, overrides)
    }

    /// Parses the template text; `overrides` replace parameter defaults (like
    /// `sam deploy --parameter-overrides`).
    pub fn from_yaml(
        text: &str,
        overrides: &HashMap<String, String>,
    ) -> Result<Self, TemplateError> {
        let template: Value = serde_yaml::from_str(text)?;
        let mut parameters: HashMap<String, String> = HashMap::new();
        if let Some(params) = template.get("Parameters").and_then(Value::as_mapping) {
            for (name, spec) in params {
                if let (Some(name), Some(default)) = (name.as_str(), spec.get("Default"))
                    && let Some(default) = scalar(default)
                {
                    parameters.insert(name.to_string(), default);
                }
            }
        }
        parameters.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        let empty = serde_yaml::Mapping::new();
        let intrinsics = Intrinsics {
            parameters: &parameters,
            conditions: template
                .get("Conditions")
                .and_then(Value::as_mapping)
                .unwrap_or(&empty),
        };
        let resolve = |value: &Value| intrinsics.value(value, 0);

        let resources = template
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| shape("no Resources"))?;
        let of_type = |wanted: &'static str| {
            resources
                .iter()
                .filter(|&(_name, resource)| {
                    resource.get("Type").and_then(Value::as_str) == Some(wanted)
                })
                .map(|(name, resource)| (name.as_str().unwrap_or_default().to_string(), resource))
        };

        let mut apis = of_type("AWS::Serverless::Api");
        let (api_name, api) = apis
            .next()
            .ok_or_else(|| shape("no AWS::Serverless::Api resource"))?;
        if apis.next().is_some() {
            return Err(shape(
                "more than one AWS::Serverless::Api: the local gateway serves one",
            ));
        }
        let api_props = api
            .get("Properties")
            .ok_or_else(|| shape("Api has no Properties"))?;
        let stage = api_props
            .get("StageName")
            .and_then(&resolve)
            .ok_or_else(|| shape("Api has no resolvable StageName"))?;

        let binary_of = |logical_id: &str| -> Option<String> {
            resources
                .get(logical_id)?
                .get("Metadata")?
                .get("BuildProperties")?
                .get("Binary")?
                .as_str()
                .map(str::to_owned)
        };

        let auth = api_props.get("Auth");
        let default_authorizer = auth
            .and_then(|auth| auth.get("DefaultAuthorizer"))
            .and_then(Value::as_str)
            .filter(|name| *name != "NONE");
        let authorizer = match default_authorizer {
            None => None,
            Some(name) => {
                let spec = auth
                    .and_then(|auth| auth.get("Authorizers"))
                    .and_then(|all| all.get(name))
                    .ok_or_else(|| {
                        shape(format!("DefaultAuthorizer {name} is not in Authorizers"))
                    })?;
                let payload = spec
                    .get("FunctionPayloadType")
                    .and_then(Value::as_str)
                    .unwrap_or("TOKEN");
                if payload != "TOKEN" {
                    return Err(shape(format!(
                        "authorizer {name}: only TOKEN authorizers are emulated"
                    )));
                }
                let function_arn = spec.get("FunctionArn");
                // Another stack's API names this stack's authorizer by its export.
                let imported = match function_arn {
                    Some(Value::Tagged(tagged)) => tagged.tag == "ImportValue",
                    Some(Value::Mapping(mapping)) => mapping.contains_key("Fn::ImportValue"),
                    _ => false,
                };
                let function = if imported {
                    "authorizer".to_string()
                } else {
                    let function_id = match function_arn {
                        Some(Value::Tagged(tagged)) if tagged.tag == "GetAtt" => tagged
                            .value
                            .as_str()
                            .and_then(|target| target.strip_suffix(".Arn"))
                            .map(str::to_owned),
                        _ => None,
                    }
                    .ok_or_else(|| {
                        shape(format!(
                            "authorizer {name}: FunctionArn must be !GetAtt <Function>.Arn or an imported export"
                        ))
                    })?;
                    binary_of(&function_id).ok_or_else(|| {
                        shape(format!(
                            "authorizer function {function_id} has no BuildProperties.Binary"
                        ))
                    })?
                };
                let identity = spec.get("Identity");
                let field = |key: &str| {
                    identity
                        .and_then(|identity| identity.get(key))
                        .and_then(&resolve)
                };
                let cache_ttl_secs = match field("ReauthorizeEvery") {
                    None => 300,
                    Some(raw) => raw.parse().map_err(|_| {
                        shape(format!(
                            "authorizer {name}: ReauthorizeEvery is not a number"
                        ))
                    })?,
                };
                Some(AuthorizerModel {
                    name: name.to_string(),
                    header: field("Header").unwrap_or_else(|| "Authorization".into()),
                    validation_expression: field("ValidationExpression"),
                    cache_ttl_secs,
                    function,
                })
            }
        };

        let mut routes = Vec::new();
        for (function_id, function) in of_type("AWS::Serverless::Function") {
            let events = function
                .get("Properties")
                .and_then(|props| props.get("Events"))
                .and_then(Value::as_mapping);
            for (_, event) in events.into_iter().flatten() {
                if event.get("Type").and_then(Value::as_str) != Some("Api") {
                    continue;
                }
                let props = event
                    .get("Properties")
                    .ok_or_else(|| shape("Api event without Properties"))?;
                if let Some(Value::Tagged(tagged)) = props.get("RestApiId")
                    && tagged.value.as_str() != Some(api_name.as_str())
                {
                    continue;
                }
                let path = props
                    .get("Path")
                    .and_then(&resolve)
                    .ok_or_else(|| shape("Api event without Path"))?;
                let method = props
                    .get("Method")
                    .and_then(&resolve)
                    .ok_or_else(|| shape("Api event without Method"))?
                    .to_ascii_uppercase();
                let event_authorizer = props
                    .get("Auth")
                    .and_then(|auth| auth.get("Authorizer"))
                    .and_then(Value::as_str);
                let authorized = match event_authorizer {
                    Some("NONE") => false,
                    Some(other) if Some(other) != default_authorizer => {
                        return Err(shape(format!(
                            "{method} {path}: authorizer {other} is not emulated"
                        )));
                    }
                    _ => authorizer.is_some(),
                };
                let function = binary_of(&function_id).ok_or_else(|| {
                    shape(format!(
                        "function {function_id} has no BuildProperties.Binary"
                    ))
                })?;
                routes.push(TemplateRoute {
                    method,
                    path,
                    function,
                    authorized,
                });
            }
        }
        routes.sort_by(|a, b| (&a.path, &a.method).cmp(&(&b.path, &b.method)));

        let mut gateway_responses = HashMap::new();
        if let Some(responses) = api_props
            .get("GatewayResponses")
            .and_then(Value::as_mapping)
        {
            for (kind, spec) in responses {
                let Some(kind) = kind.as_str() else { continue };
                let status = spec
                    .get("StatusCode")
                    .and_then(&resolve)
                    .and_then(|s| s.parse().ok());
                let headers = spec
                    .get("ResponseParameters")
                    .and_then(|params| params.get("Headers"))
                    .and_then(Value::as_mapping)
                    .map(|headers| {
                        headers
                            .iter()
                            .filter_map(|(name, value)| {
                                // Static header values are quoted: "'nosniff'".
                                let value = unquote(&resolve(value)?)?;
                                Some((name.as_str()?.to_string(), value))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let body_template = spec
                    .get("ResponseTemplates")
                    .and_then(|templates| templates.get("application/json"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                gateway_responses.insert(
                    kind.to_string(),
                    GatewayResponseModel {
                        status,
                        headers,
                        body_template,
                    },
                );
            }
        }

        let mut throttling = Vec::new();
        for setting in api_props
            .get("MethodSettings")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let (Some(rate), Some(burst)) = (
                setting.get("ThrottlingRateLimit").and_then(&resolve),
                setting.get("ThrottlingBurstLimit").and_then(&resolve),
            ) else {
                continue;
            };
            let raw_path = setting
                .get("ResourcePath")
                .and_then(&resolve)
                .ok_or_else(|| shape("MethodSettings entry without ResourcePath"))?;
            // `/*` is every resource; otherwise the leading `/` is a separator and the path's
            // own slashes are `~1`: `/~1token~1refresh` is `/token/refresh`.
            let path = match raw_path.as_str() {
                "/*" => raw_path,
                other => other.strip_prefix('/').unwrap_or(other).replace("~1", "/"),
            };
            let method = setting
                .get("HttpMethod")
                .and_then(&resolve)
                .ok_or_else(|| shape("MethodSettings entry without HttpMethod"))?
                .to_ascii_uppercase();
            throttling.push(MethodThrottle {
                rate_per_sec: rate.parse().map_err(|_| {
                    shape(format!(
                        "{method} {path}: ThrottlingRateLimit is not a number"
                    ))
                })?,
                burst: burst.parse().map_err(|_| {
                    shape(format!(
                        "{method} {path}: ThrottlingBurstLimit is not a whole number"
                    ))
                })?,
                path,
                method,
            });
        }

        let function_environment = template
            .get("Globals")
            .and_then(|globals| globals.get("Function"))
            .and_then(|function| function.get("Environment"))
            .and_then(|environment| environment.get("Variables"))
            .and_then(Value::as_mapping)
            .map(|variables| {
                variables
                    .iter()
                    .filter_map(|(name, value)| Some((name.as_str()?.to_string(), resolve(value)?)))
                    .collect()
            })
            .unwrap_or_default();

        let cors = api_props.get("Cors").map(|cors| {
            let field = |key: &str| cors.get(key).and_then(&resolve).and_then(|v| unquote(&v));
            CorsModel {
                allow_origin: field("AllowOrigin"),
                allow_headers: field("AllowHeaders"),
                max_age: field("MaxAge"),
            }
        });

        // `!Sub "…/${Api}"` or `!Sub ["…/${Api}", {…}]`.
        let api_suffix = format!("/${{{api_name}}}");
        let permissions_document = of_type("AWS::SSM::Parameter").find_map(|(_, parameter)| {
            let properties = parameter.get("Properties")?;
            let name = match properties.get("Name")? {
                Value::Tagged(tagged) if tagged.tag == "Sub" => match &tagged.value {
                    Value::String(text) => text.clone(),
                    Value::Sequence(parts) => parts.first()?.as_str()?.to_string(),
                    _ => return None,
                },
                _ => return None,
            };
            name.ends_with(&api_suffix)
                .then(|| properties.get("Value")?.as_str().map(str::to_owned))
                .flatten()
        });
        Ok(Self {
            stage,
            routes,
            authorizer,
            gateway_responses,
            function_environment,
            throttling,
            cors,
            permissions_document,
        })
    }
}

/// A quoted API Gateway header value (`'nosniff'`) without its quotes.
fn unquote(value: &str) -> Option<String> {
    let value = value.trim();
    Some(value.strip_prefix('\'')?.strip_suffix('\'')?.to_string())
}

/// Deepest nesting of conditions and intrinsics evaluated (a template's are shallow; this
/// only stops a cycle of conditions).
const MAX_INTRINSIC_DEPTH: usize = 16;

/// Evaluates the intrinsic functions the local gateway needs against parameter values.
struct Intrinsics<'a> {
    parameters: &'a HashMap<String, String>,
    conditions: &'a serde_yaml::Mapping,
}

impl Intrinsics<'_> {
    /// A value as a string; `None` for `AWS::NoValue` or anything unresolvable here.
    fn value(&self, value: &Value, depth: usize) -> Option<String> {
        if depth > MAX_INTRINSIC_DEPTH {
            return None;
        }
        let Value::Tagged(tagged) = value else {
            return scalar(value);
        };
        match tagged.tag.to_string().trim_start_matches('!') {
            "Ref" => self.parameters.get(tagged.value.as_str()?).cloned(),
            "Sub" => {
                // One pass over the template text: a value is never scanned again, so a
                // parameter whose value holds `${...}` cannot loop.
                let mut rest = tagged.value.as_str()?;
                let mut text = String::new();
                while let Some(start) = rest.find("${") {
                    let end = start + rest[start..].find('}')?;
                    text.push_str(&rest[..start]);
                    text.push_str(self.parameters.get(&rest[start + 2..end])?);
                    rest = &rest[end + 1..];
                }
                text.push_str(rest);
                Some(text)
            }
            "If" => {
                let branches = tagged.value.as_sequence()?;
                let chosen = if self.condition(branches.first()?.as_str()?, depth + 1)? {
                    branches.get(1)?
                } else {
                    branches.get(2)?
                };
                self.value(chosen, depth + 1)
            }
            _ => None,
        }
    }

    fn condition(&self, name: &str, depth: usize) -> Option<bool> {
        self.truth(self.conditions.get(name)?, depth + 1)
    }

    fn truth(&self, value: &Value, depth: usize) -> Option<bool> {
        if depth > MAX_INTRINSIC_DEPTH {
            return None;
        }
        let Value::Tagged(tagged) = value else {
            return None;
        };
        let operands = || tagged.value.as_sequence().map(Vec::as_slice);
        match tagged.tag.to_string().trim_start_matches('!') {
            "Equals" => match operands()? {
                [a, b] => Some(self.value(a, depth + 1)? == self.value(b, depth + 1)?),
                _ => None,
            },
            "Not" => Some(!self.truth(operands()?.first()?, depth + 1)?),
            "And" => operands()?
                .iter()
                .try_fold(true, |all, x| Some(all && self.truth(x, depth + 1)?)),
            "Or" => operands()?
                .iter()
                .try_fold(false, |any, x| Some(any || self.truth(x, depth + 1)?)),
            "Condition" => self.condition(tagged.value.as_str()?, depth + 1),
            _ => None,
        }
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
