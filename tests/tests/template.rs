//! template.yaml against the code: the routes and who may call them, the authorizer wiring,
//! least-privilege IAM (SECURITY.md row 46), no seeded account (row 39), and the table the
//! store expects.

use integration_tests::workspace_root;
use jwt_auth_core::access::routes::{Access, routes};
use local_gateway::template::ApiModel;
use serde_yaml::Value;
use std::collections::{BTreeSet, HashMap};

fn template_text() -> String {
    std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap()
}

fn template() -> Value {
    serde_yaml::from_str(&template_text()).unwrap()
}

fn model() -> ApiModel {
    ApiModel::from_yaml(&template_text(), &HashMap::new()).unwrap()
}

fn resource<'a>(template: &'a Value, name: &str) -> &'a Value {
    template["Resources"]
        .get(name)
        .unwrap_or_else(|| panic!("no resource {name}"))
}

/// Every IAM action a function's `Policies` grant, as (action, resources as YAML text).
fn granted_actions(template: &Value, function: &str) -> Vec<(String, String)> {
    let mut granted = Vec::new();
    for policy in resource(template, function)["Properties"]["Policies"]
        .as_sequence()
        .unwrap()
    {
        // `!If [Condition, policy, AWS::NoValue]`: the policy, its actions marked "if:".
        let (policy, prefix) = match policy {
            Value::Tagged(tagged) if tagged.tag == "If" => (&tagged.value[1], "if:"),
            plain => (plain, ""),
        };
        if let Some(statements) = policy.get("Statement").and_then(Value::as_sequence) {
            for statement in statements {
                if statement["Effect"] == "Deny" {
                    continue;
                }
                let resources = serde_yaml::to_string(&statement["Resource"]).unwrap();
                let actions = match &statement["Action"] {
                    Value::String(one) => vec![one.clone()],
                    Value::Sequence(many) => many
                        .iter()
                        .filter_map(|a| a.as_str().map(str::to_owned))
                        .collect(),
                    other => panic!("unexpected Action {other:?}"),
                };
                granted.extend(
                    actions
                        .into_iter()
                        .map(|action| (format!("{prefix}{action}"), resources.clone())),
                );
            }
        } else {
            let name = policy
                .as_mapping()
                .unwrap()
                .keys()
                .next()
                .unwrap()
                .as_str()
                .unwrap();
            granted.push((
                format!("{prefix}template:{name}"),
                serde_yaml::to_string(policy).unwrap(),
            ));
        }
    }
    granted
}

#[test]
fn this_apis_permissions_document_matches_the_routes_in_template_yaml() {
    let in_template: BTreeSet<(String, String, bool)> = model()
        .routes
        .into_iter()
        .map(|route| (route.method, route.path, route.authorized))
        .collect();
    let in_code: BTreeSet<(String, String, bool)> = routes()
        .iter()
        .map(|route| {
            (
                route.method.to_string(),
                route.path.to_string(),
                route.access != Access::Public,
            )
        })
        .collect();
    assert_eq!(in_template, in_code);
}

#[test]
fn every_route_is_served_by_the_function_that_handles_it() {
    for route in model().routes {
        let expected = if route.path.starts_with("/users") {
            "users"
        } else {
            "login"
        };
        assert_eq!(route.function, expected, "{} {}", route.method, route.path);
    }
}

#[test]
fn the_authorizer_is_a_cached_token_authorizer_on_the_authorization_header() {
    let authorizer = model().authorizer.expect("a default authorizer");
    assert_eq!(authorizer.header, "Authorization");
    assert_eq!(authorizer.function, "authorizer");
    assert_eq!(authorizer.cache_ttl_secs, 300);
    let expression = regex_lite::Regex::new(&authorizer.validation_expression.unwrap()).unwrap();
    // API Gateway answers 401 itself, without invoking the authorizer, when this fails.
    assert!(expression.is_match("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln-_x"));
    for refused in [
        "Bearer a.b.c d.e.f",
        "Bearer a.b.",
        "Bearer a=.b.c",
        "Basic a.b.c",
        "a.b.c",
        "Bearer a.b",
    ] {
        assert!(!expression.is_match(refused), "{refused}");
    }
}

#[test]
fn no_function_is_granted_more_than_it_uses() {
    let template = template();
    let dynamo = |function: &str| -> BTreeSet<String> {
        granted_actions(&template, function)
            .into_iter()
            .map(|(action, _)| action)
            .filter(|action| action.starts_with("dynamodb:"))
            .collect()
    };
    let set = |actions: &[&str]| -> BTreeSet<String> {
        actions
            .iter()
            .map(|action| format!("dynamodb:{action}"))
            .collect()
    };
    // Sessions: read by key, count failures, store and rotate refresh tokens, deny-list.
    assert_eq!(
        dynamo("LoginFunction"),
        set(&[
            "GetItem",
            "BatchGetItem",
            "PutItem",
            "UpdateItem",
            "DeleteItem",
            "ConditionCheckItem"
        ])
    );
    // Users: re-check the caller, read by key and index, conditional transactional writes;
    // never Scan.
    assert_eq!(
        dynamo("UsersFunction"),
        set(&[
            "GetItem",
            "BatchGetItem",
            "Query",
            "PutItem",
            "UpdateItem",
            "DeleteItem",
            "ConditionCheckItem"
        ])
    );
    // The authorizer only reads: one BatchGetItem, and the published public keys.
    assert_eq!(
        dynamo("AuthorizerFunction"),
        set(&["BatchGetItem", "GetItem"])
    );
    // Rotation reads and writes the public keys item, nothing else of the table.
    assert_eq!(dynamo("KeyRotationFunction"), set(&["GetItem", "PutItem"]));
    for function in [
        "LoginFunction",
        "UsersFunction",
        "AuthorizerFunction",
        "KeyRotationFunction",
    ] {
        for (action, resources) in granted_actions(&template, function) {
            assert!(
                !resources.contains("'*'") && !resources.trim().eq("'*'"),
                "{function}: {action} on *"
            );
            assert!(
                !action.contains('*'),
                "{function}: wildcard action {action}"
            );
            assert!(
                !matches!(
                    action.as_str(),
                    "template:DynamoDBCrudPolicy"
                        | "template:AmazonDynamoDBFullAccess"
                        | "template:DynamoDBWritePolicy"
                ),
                "{function}: {action}"
            );
        }
    }
    // Who reads which secret: only the signer reads the private token keys; the authorizer
    // only when they are HMAC keys (which have no public half).
    let secrets = |function: &str| -> Vec<String> {
        granted_actions(&template, function)
            .into_iter()
            .filter(|(action, _)| {
                action.ends_with("template:AWSSecretsManagerGetSecretValuePolicy")
            })
            .map(|(action, policy)| {
                let secret = if policy.contains("SigningKeysSecret") {
                    "keys"
                } else if policy.contains("HmacSecret") {
                    "hmac"
                } else {
                    "other"
                };
                format!(
                    "{}{secret}",
                    if action.starts_with("if:") { "if:" } else { "" }
                )
            })
            .collect()
    };
    assert_eq!(secrets("LoginFunction"), ["keys", "hmac"]);
    assert_eq!(secrets("UsersFunction"), ["hmac"]);
    assert_eq!(secrets("AuthorizerFunction"), ["if:keys"]);
    // The public keys item: read by the authorizer and written by rotation, each limited to
    // that one item; the login and users functions, which write the table, may not write it.
    let statements = |function: &str| -> Vec<Value> {
        resource(&template, function)["Properties"]["Policies"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|policy| policy.get("Statement").and_then(Value::as_sequence))
            .flatten()
            .cloned()
            .collect()
    };
    let keys_item = |statement: &Value, operator: &str| {
        statement["Condition"][operator]["dynamodb:LeadingKeys"]
            .as_sequence()
            .is_some_and(|keys| keys.len() == 1 && keys[0] == "KEYS#public")
    };
    let actions = |statement: &Value| -> BTreeSet<String> {
        statement["Action"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    };
    for (function, limited) in [
        ("AuthorizerFunction", set(&["GetItem"])),
        ("KeyRotationFunction", set(&["GetItem", "PutItem"])),
    ] {
        assert!(
            statements(function)
                .iter()
                .any(|statement| statement["Effect"] == "Allow"
                    && actions(statement) == limited
                    && keys_item(statement, "ForAllValues:StringEquals")),
            "{function}: {limited:?} only on KEYS#public"
        );
    }
    for function in ["LoginFunction", "UsersFunction"] {
        assert!(
            statements(function)
                .iter()
                .any(|statement| statement["Effect"] == "Deny"
                    && actions(statement) == set(&["PutItem", "UpdateItem", "DeleteItem"])
                    && keys_item(statement, "ForAnyValue:StringEquals")),
            "{function} may not write the public keys"
        );
    }
    let rotation: BTreeSet<String> = granted_actions(&template, "KeyRotationFunction")
        .into_iter()
        .filter(|(action, _)| action.starts_with("secretsmanager:"))
        .map(|(action, resources)| {
            assert!(resources.contains("SigningKeysSecret"), "{action}");
            action
        })
        .collect();
    assert_eq!(
        rotation,
        [
            "secretsmanager:DescribeSecret",
            "secretsmanager:GetSecretValue",
            "secretsmanager:PutSecretValue",
            "secretsmanager:UpdateSecretVersionStage"
        ]
        .map(str::to_owned)
        .into()
    );
    assert!(
        !template_text().contains("Resource: \"*\"") && !template_text().contains("Resource: '*'")
    );
}

/// Whether an IAM `StringLike` pattern with at most a trailing `*` matches `value`.
fn iam_like(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => pattern == value,
    }
}

#[test]
fn the_authorizer_reads_only_the_items_and_attributes_of_its_decision() {
    use jwt_auth_core::store::dynamodb::{
        AUTHORIZATION_STATE_ATTRIBUTES, AUTHORIZATION_STATE_KEY_PREFIXES, CREDENTIAL_KEY_PREFIX,
    };
    let template = template();
    let statements =
        resource(&template, "AuthorizerFunction")["Properties"]["Policies"][0]["Statement"]
            .as_sequence()
            .unwrap();
    let batch_get = statements
        .iter()
        .find(|statement| statement["Action"][0] == "dynamodb:BatchGetItem")
        .expect("the authorizer's BatchGetItem statement");
    let strings = |value: &Value| -> BTreeSet<String> {
        value
            .as_sequence()
            .unwrap_or_else(|| panic!("not a list: {value:?}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let condition = &batch_get["Condition"];
    let leading = strings(&condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]);
    let attributes = strings(&condition["ForAllValues:StringEquals"]["dynamodb:Attributes"]);
    assert_eq!(
        condition["StringEqualsIfExists"]["dynamodb:Select"], "SPECIFIC_ATTRIBUTES",
        "without it a read of every attribute would pass the attribute list"
    );
    // Exactly the store's reads: a new item or attribute read fails here, not in AWS.
    assert_eq!(
        leading,
        AUTHORIZATION_STATE_KEY_PREFIXES
            .iter()
            .map(|prefix| format!("{prefix}*"))
            .collect()
    );
    assert_eq!(
        attributes,
        AUTHORIZATION_STATE_ATTRIBUTES
            .iter()
            .map(|name| name.to_string())
            .collect()
    );
    // What it must never read: a credential item (the password hash), a refresh token,
    // a failure counter, a lease.
    for forbidden in [
        format!("{CREDENTIAL_KEY_PREFIX}alice"),
        "REFRESH#0f".to_string(),
        "FAILURES#alice".to_string(),
        "LEASE#password#x".to_string(),
    ] {
        assert!(
            !leading.iter().any(|pattern| iam_like(pattern, &forbidden)),
            "{forbidden} is readable"
        );
    }
    assert!(!attributes.contains("password_hash"));
    // The only other read: the published public keys, one item.
    let get = statements
        .iter()
        .find(|statement| statement["Action"][0] == "dynamodb:GetItem")
        .expect("the authorizer's GetItem statement");
    assert_eq!(
        strings(&get["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"]),
        BTreeSet::from(["KEYS#public".to_string()])
    );
    assert!(
        statements
            .iter()
            .filter(|statement| statement["Effect"] == "Allow")
            .filter(|statement| serde_yaml::to_string(&statement["Resource"])
                .unwrap()
                .contains("UsersTable"))
            .all(|statement| statement.get("Condition").is_some()),
        "every table read of the authorizer is conditioned"
    );
}

/// The `dynamodb:LeadingKeys` patterns of a function's first Allow statement on the table.
fn allowed_leading_keys(template: &Value, function: &str) -> BTreeSet<String> {
    let statements = resource(template, function)["Properties"]["Policies"][0]["Statement"]
        .as_sequence()
        .unwrap();
    let table_statement = statements
        .iter()
        .find(|statement| {
            statement["Effect"] == "Allow"
                && serde_yaml::to_string(&statement["Resource"])
                    .unwrap()
                    .contains("UsersTable.Arn")
                && !serde_yaml::to_string(&statement["Resource"])
                    .unwrap()
                    .contains("/index/")
        })
        .unwrap_or_else(|| panic!("{function}: no Allow on the table"));
    let condition = &table_statement["Condition"];
    let patterns = condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
        .as_sequence()
        .or_else(|| condition["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"].as_sequence())
        .unwrap_or_else(|| panic!("{function}: its table access is not limited by key"));
    patterns
        .iter()
        .map(|pattern| pattern.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_function_reaches_only_the_item_kinds_it_uses() {
    use jwt_auth_core::store::dynamodb::{ITEM_KEY_PREFIXES, PUBLIC_KEYS_KEY};
    let template = template();
    let kinds = |prefixes: &[&str]| -> BTreeSet<String> {
        prefixes.iter().map(|prefix| format!("{prefix}*")).collect()
    };
    let with_keys = |mut set: BTreeSet<String>| {
        set.insert(PUBLIC_KEYS_KEY.to_string());
        set
    };
    // Login: every kind (users, credentials, sessions, deny-list, refresh tokens,
    // counters, leases) and the public keys, which it reads for the JWKS route. Tied to
    // the store's own list: a new kind of item fails here, not with AccessDenied in AWS.
    assert_eq!(
        allowed_leading_keys(&template, "LoginFunction"),
        with_keys(kinds(&ITEM_KEY_PREFIXES))
    );
    // Users: users and credentials, what the re-check reads, and second factors and
    // their code counters (an admin's reset removes one and starts its counter afresh);
    // no refresh token, no login counter, no lease, no keys.
    let code_counters = format!(
        "FAILURES#{}*",
        jwt_auth_core::sessions::challenge::code_counter("")
    );
    let mut users = kinds(&["USER#", "USERNAME#", "REVOKED#", "FAMILY#", "FACTOR#"]);
    users.insert(code_counters);
    assert_eq!(allowed_leading_keys(&template, "UsersFunction"), users);
    // Its one other table statement: Query on the by-kind index, nothing else.
    let users = resource(&template, "UsersFunction")["Properties"]["Policies"][0]["Statement"]
        .as_sequence()
        .unwrap();
    let query = users
        .iter()
        .find(|statement| statement["Action"][0] == "dynamodb:Query")
        .unwrap();
    assert_eq!(query["Action"].as_sequence().unwrap().len(), 1);
    assert!(
        serde_yaml::to_string(&query["Resource"])
            .unwrap()
            .contains(&format!(
                "/index/{}",
                jwt_auth_core::store::dynamodb::BY_KIND_INDEX
            ))
    );
    // The authorizer and the rotation: the public keys item (and the authorizer's
    // re-check, tested on its own).
    for function in ["AuthorizerFunction", "KeyRotationFunction"] {
        let statements = resource(&template, function)["Properties"]["Policies"][0]["Statement"]
            .as_sequence()
            .unwrap();
        let table_access = statements.iter().filter(|statement| {
            statement["Effect"] == "Allow"
                && serde_yaml::to_string(&statement["Action"])
                    .unwrap()
                    .contains("dynamodb:")
        });
        for statement in table_access {
            assert!(
                statement.get("Condition").is_some(),
                "{function}: {statement:?}"
            );
        }
    }
}

#[test]
fn no_key_or_secret_value_appears_in_the_template() {
    let template = template();
    let text = template_text();
    let globals = &template["Globals"]["Function"]["Environment"]["Variables"];
    for local in ["JWT_SECRET", "HMAC_SECRET", "DYNAMODB_ENDPOINT"] {
        // Declared for `sam local invoke --env-vars`, empty in every deployment.
        assert_eq!(globals[local], "", "{local}");
    }
    // No variable of any function holds a literal secret: each is empty or a reference.
    let mut environments = vec![globals.clone()];
    for (_, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"] == "AWS::Serverless::Function" {
            environments.push(resource["Properties"]["Environment"]["Variables"].clone());
        }
    }
    for variables in environments.iter().filter_map(Value::as_mapping) {
        for (name, value) in variables {
            let name = name.as_str().unwrap();
            if name.contains("SECRET") {
                assert!(
                    value == "" || matches!(value, Value::Tagged(_)),
                    "{name} holds a literal: {value:?}"
                );
            }
        }
    }
    assert!(!text.contains("BEGIN PRIVATE KEY"));
    for secret in ["HmacSecret", "SigningKeysSecret"] {
        assert!(
            resource(&template, secret)["Properties"]
                .get("SecretString")
                .is_none(),
            "{secret} is generated, not written down"
        );
    }
    let hmac = resource(&template, "HmacSecret");
    assert_eq!(hmac["Type"], "AWS::SecretsManager::Secret");
    // The TOTP secrets in the retained table are sealed under a key derived from it.
    assert_eq!(hmac["DeletionPolicy"], "Retain");
    assert_eq!(hmac["UpdateReplacePolicy"], "Retain");
    assert_eq!(
        resource(&template, "UsersTable")["DeletionPolicy"],
        "Retain"
    );
    assert!(
        hmac["Properties"]["GenerateSecretString"]["PasswordLength"]
            .as_u64()
            .unwrap()
            >= 32
    );
    // The key set starts as a placeholder without `keys`, which the first rotation (at
    // deploy) replaces; the functions treat it as "no key set yet" (503, retried).
    let keys = resource(&template, "SigningKeysSecret");
    let placeholder = keys["Properties"]["GenerateSecretString"]["SecretStringTemplate"]
        .as_str()
        .unwrap();
    assert!(jwt_auth_core::crypto::keys::live::is_placeholder(
        placeholder
    ));
    let env = |function: &str| {
        resource(&template, function)["Properties"]["Environment"]["Variables"].clone()
    };
    assert!(
        matches!(&env("LoginFunction")["SIGNING_KEYS_SECRET_ARN"], Value::Tagged(t) if t.tag == "Ref")
    );
    assert!(matches!(&env("LoginFunction")["HMAC_SECRET_ARN"], Value::Tagged(t) if t.tag == "Ref"));
    assert!(
        env("UsersFunction")
            .get("SIGNING_KEYS_SECRET_ARN")
            .is_none()
    );
    assert!(
        matches!(&env("AuthorizerFunction")["SIGNING_KEYS_SECRET_ARN"], Value::Tagged(t) if t.tag == "If")
    );
}

#[test]
fn keys_are_es256_by_default_and_rotate_on_a_schedule_from_the_first_deploy() {
    let template = template();
    let parameters = &template["Parameters"];
    assert_eq!(parameters["SigningAlgorithm"]["Default"], "ES256");
    assert_eq!(parameters["KeyRotationDays"]["Default"], 90);
    let schedule = resource(&template, "SigningKeysRotation");
    assert_eq!(schedule["Type"], "AWS::SecretsManager::RotationSchedule");
    let properties = &schedule["Properties"];
    assert_eq!(properties["RotateImmediatelyOnUpdate"], true);
    let text = serde_yaml::to_string(properties).unwrap();
    for expected in [
        "SigningKeysSecret",
        "KeyRotationFunction",
        "KeyRotationDays",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    let permission = resource(&template, "KeyRotationPermission");
    assert_eq!(
        permission["Properties"]["Principal"],
        "secretsmanager.amazonaws.com"
    );
    let rotation_env =
        &resource(&template, "KeyRotationFunction")["Properties"]["Environment"]["Variables"];
    assert!(
        serde_yaml::to_string(&rotation_env["SIGNING_ALGORITHM"])
            .unwrap()
            .contains("SigningAlgorithm")
    );
    // The publication lead: the rotation function's, defaulting to the code's default,
    // which covers API Gateway's two-hour key cache.
    assert!(
        serde_yaml::to_string(&rotation_env["KEY_PUBLISH_LEAD_SECONDS"])
            .unwrap()
            .contains("KeyPublishLeadSeconds")
    );
    assert_eq!(
        parameters["KeyPublishLeadSeconds"]["Default"],
        jwt_auth_core::crypto::keys::DEFAULT_PUBLISH_LEAD_SECS
    );
    assert!(parameters["KeyPublishLeadSeconds"]["Default"].as_u64() > Some(2 * 3600));
}

#[test]
fn no_account_is_seeded_by_the_template() {
    // The parsed template, so that comments explaining the absence do not count.
    let text = serde_yaml::to_string(&template()).unwrap().to_lowercase();
    for seeded in [
        "admin/admin",
        "password:",
        "custom::",
        "aws::cloudformation::customresource",
    ] {
        assert!(!text.contains(seeded), "{seeded}");
    }
}

#[test]
fn the_users_table_has_the_schema_the_store_expects() {
    let template = template();
    let table = &resource(&template, "UsersTable")["Properties"];
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    assert_eq!(
        table["TimeToLiveSpecification"]["AttributeName"],
        jwt_auth_core::store::dynamodb::TTL_ATTRIBUTE
    );
    assert_eq!(table["KeySchema"][0]["AttributeName"], "pk");
    let index = &table["GlobalSecondaryIndexes"][0];
    assert_eq!(
        index["IndexName"],
        jwt_auth_core::store::dynamodb::BY_KIND_INDEX
    );
    let projected: Vec<&str> = index["Projection"]["NonKeyAttributes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        !projected.contains(&"password_hash"),
        "the index never holds a hash"
    );
}

#[test]
fn every_function_is_an_arm64_rust_build_on_provided_al2023() {
    let template = template();
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    // One instruction set for all, arm64 unless a local run asks for x86_64.
    assert!(
        matches!(&globals["Architectures"][0], Value::Tagged(t) if t.tag == "Ref" && t.value == "Architecture")
    );
    let architecture = &template["Parameters"]["Architecture"];
    assert_eq!(architecture["Default"], "arm64");
    assert_eq!(
        architecture["AllowedValues"],
        serde_yaml::from_str::<Value>("[arm64, x86_64]").unwrap()
    );
    for (function, binary) in [
        ("LoginFunction", "login"),
        ("UsersFunction", "users"),
        ("AuthorizerFunction", "authorizer"),
        ("KeyRotationFunction", "rotation"),
    ] {
        let function = resource(&template, function);
        assert_eq!(function["Metadata"]["BuildMethod"], "rust-cargolambda");
        assert_eq!(function["Metadata"]["BuildProperties"]["Binary"], binary);
    }
    let login_memory = resource(&template, "LoginFunction")["Properties"]["MemorySize"]
        .as_u64()
        .unwrap();
    assert!(
        (512..=1024).contains(&login_memory),
        "argon2 needs CPU, which comes with memory"
    );
}

#[test]
fn gateway_responses_are_json_with_nosniff() {
    let model = model();
    for kind in [
        "UNAUTHORIZED",
        "ACCESS_DENIED",
        "MISSING_AUTHENTICATION_TOKEN",
        "AUTHORIZER_FAILURE",
        "THROTTLED",
        "DEFAULT_4XX",
        "DEFAULT_5XX",
    ] {
        let response = model
            .gateway_responses
            .get(kind)
            .unwrap_or_else(|| panic!("{kind}"));
        assert!(
            response
                .body_template
                .as_deref()
                .is_some_and(|t| t.starts_with('{')),
            "{kind}"
        );
        assert!(
            response
                .headers
                .iter()
                .any(|(n, v)| n == "X-Content-Type-Options" && v == "nosniff"),
            "{kind}"
        );
    }
}

#[test]
fn the_login_functions_routes_are_throttled_below_the_default_of_every_other_method() {
    let model = model();
    let limits = |method: &str, path: &str| {
        let throttle = model
            .throttle_for(method, path)
            .unwrap_or_else(|| panic!("{method} {path} is not throttled"));
        (throttle.rate_per_sec, throttle.burst)
    };
    let default = limits("GET", "/users");
    // Every route the login function serves: it has reserved executions, which argon2
    // work (login, password change) or a flood of cheap calls could otherwise hold.
    for (method, path) in [
        ("POST", "/login"),
        ("POST", "/token/refresh"),
        ("POST", "/password"),
        ("POST", "/logout"),
        ("POST", "/logout/all"),
    ] {
        let (rate, burst) = limits(method, path);
        assert!(rate < default.0 && burst < default.1, "{method} {path}");
    }
    // The password change (two argon2id computations) is held below login (one).
    assert!(limits("POST", "/password").0 < limits("POST", "/login").0);
    for route in &model.routes {
        let (rate, burst) = limits(&route.method, &route.path);
        assert!(rate > 0.0 && burst > 0, "{} {}", route.method, route.path);
    }
}

#[test]
fn store_outages_and_throttling_are_retryable_answers_from_the_gateway() {
    let model = model();
    for (kind, status) in [("AUTHORIZER_FAILURE", 503), ("THROTTLED", 429)] {
        let response = &model.gateway_responses[kind];
        assert_eq!(response.status, Some(status), "{kind}");
        assert!(
            response
                .headers
                .iter()
                .any(|(name, value)| name == "Retry-After" && value.parse::<u64>().is_ok()),
            "{kind}"
        );
    }
    // A bug in the authorizer's output is not an outage.
    assert_eq!(
        model.gateway_responses["AUTHORIZER_CONFIGURATION_ERROR"].status,
        Some(500)
    );
}

#[test]
fn a_login_flood_has_a_concurrency_ceiling_and_waf_is_optional() {
    let template = template();
    let login = &resource(&template, "LoginFunction")["Properties"];
    assert!(
        login.get("ReservedConcurrentExecutions").is_some(),
        "the login function has a concurrency ceiling"
    );
    let default: u64 = template["Parameters"]["LoginReservedConcurrency"]["Default"]
        .as_u64()
        .expect("a number");
    assert!(default > 0, "the ceiling is on by default");
    for waf in ["LoginWebAcl", "LoginWebAclAssociation"] {
        assert_eq!(
            resource(&template, waf)["Condition"].as_str(),
            Some("WafEnabled"),
            "{waf} is optional"
        );
    }
    assert_eq!(
        template["Parameters"]["EnableWaf"]["Default"].as_str(),
        Some("false")
    );
}

#[test]
fn cors_is_a_parameter_applied_to_the_preflight_and_every_gateway_response() {
    let template = template();
    assert_eq!(template["Parameters"]["CorsAllowOrigin"]["Default"], "");
    let api = &resource(&template, "Api")["Properties"];
    let cors = serde_yaml::to_string(&api["Cors"]).unwrap();
    assert!(
        cors.contains("CorsEnabled") && cors.contains("CorsAllowOrigin"),
        "{cors}"
    );
    assert!(
        api["Cors"]["AllowHeaders"]
            .as_str()
            .unwrap()
            .contains("Authorization")
    );
    assert_eq!(
        api["Auth"]["AddDefaultAuthorizerToCorsPreflight"], false,
        "browsers send preflights without a token"
    );
    let responses = api["GatewayResponses"].as_mapping().unwrap();
    assert!(responses.len() >= 8);
    for (kind, response) in responses {
        let headers = &response["ResponseParameters"]["Headers"];
        for header in ["Access-Control-Allow-Origin", "Vary"] {
            assert!(
                matches!(&headers[header], Value::Tagged(tagged) if tagged.tag == "If"),
                "{kind:?}: {header}"
            );
        }
    }
    // The functions get the same origin.
    let env = &template["Globals"]["Function"]["Environment"]["Variables"];
    assert!(matches!(&env["CORS_ALLOW_ORIGIN"], Value::Tagged(t) if t.tag == "Ref"));
    // Evaluated as the local gateway evaluates the template: on with an origin, off empty.
    let on = ApiModel::from_yaml(
        &template_text(),
        &HashMap::from([(
            "CorsAllowOrigin".to_string(),
            "https://app.example.com".to_string(),
        )]),
    )
    .unwrap();
    for (kind, response) in &on.gateway_responses {
        assert!(
            response.headers.contains(&(
                "Access-Control-Allow-Origin".into(),
                "https://app.example.com".into()
            )),
            "{kind}"
        );
        assert!(
            response.headers.contains(&("Vary".into(), "Origin".into())),
            "{kind}"
        );
    }
    let star = ApiModel::from_yaml(
        &template_text(),
        &HashMap::from([("CorsAllowOrigin".to_string(), "*".to_string())]),
    )
    .unwrap();
    assert!(
        star.gateway_responses
            .values()
            .all(|r| !r.headers.iter().any(|(n, _)| n == "Vary"))
    );
    let off = model();
    assert_eq!(off.cors.as_ref().unwrap().allow_origin, None);
    assert!(off.gateway_responses.values().all(|r| {
        !r.headers
            .iter()
            .any(|(n, _)| n.starts_with("Access-Control"))
    }));
}

#[test]
fn the_sam_local_env_file_names_real_functions_and_declared_variables_only() {
    // SAM overrides only variables the template declares, for functions it has; anything
    // else in events/env.json would be silently ignored. (`make sam-local` runs `sam local
    // invoke` with it for real; this is the fast check.)
    let template = template();
    let env: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(integration_tests::workspace_root().join("events/env.json"))
            .unwrap(),
    )
    .unwrap();
    let globals: BTreeSet<String> = template["Globals"]["Function"]["Environment"]["Variables"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let declared = |function: &str| -> BTreeSet<String> {
        let mut names = globals.clone();
        if let Some(own) =
            resource(&template, function)["Properties"]["Environment"]["Variables"].as_mapping()
        {
            names.extend(own.keys().map(|k| k.as_str().unwrap().to_string()));
        }
        names
    };
    let functions = ["LoginFunction", "UsersFunction", "AuthorizerFunction"];
    for (section, variables) in env.as_object().unwrap() {
        let variables = variables.as_object().unwrap();
        if section == "Parameters" {
            // Applies to every function: each name must be declared by at least one.
            for name in variables.keys() {
                assert!(
                    functions.iter().any(|f| declared(f).contains(name)),
                    "Parameters.{name} is declared by no function"
                );
            }
            continue;
        }
        assert!(
            functions.contains(&section.as_str()),
            "{section} is not a function of the template"
        );
        for name in variables.keys() {
            assert!(
                declared(section).contains(name),
                "{section}.{name} is not declared"
            );
        }
    }
    // With it, every function starts locally: the ARNs blanked, local secrets set.
    let parameters = env["Parameters"].as_object().unwrap();
    for (name, value) in parameters {
        let value = value.as_str().unwrap();
        if name.ends_with("_ARN") {
            assert_eq!(value, "", "{name}");
        }
    }
    for function in functions {
        let mut variables: HashMap<String, String> = parameters
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        if let Some(own) = env[function].as_object() {
            variables.extend(
                own.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())),
            );
        }
        let config = jwt_auth_core::Config::from_lookup(|name| variables.get(name).cloned())
            .unwrap_or_else(|err| panic!("{function}: {err}"));
        assert!(config.dynamodb_endpoint.is_some(), "{function}");
        if function != "AuthorizerFunction" {
            assert!(config.hmac_secret().is_ok(), "{function}");
        }
    }
}

#[test]
fn every_function_logs_json_to_a_group_with_retention_and_is_traced() {
    let template = template();
    assert_eq!(template["Parameters"]["LogRetentionDays"]["Default"], 30);
    assert_eq!(
        serde_yaml::to_string(&template["Globals"]["Function"]["Tracing"])
            .unwrap()
            .trim(),
        "!If\n- TracingOn\n- Active\n- PassThrough"
    );
    for function in [
        "LoginFunction",
        "UsersFunction",
        "AuthorizerFunction",
        "KeyRotationFunction",
    ] {
        let logging = &resource(&template, function)["Properties"]["LoggingConfig"];
        assert_eq!(logging["LogFormat"], "JSON", "{function}");
        let Value::Tagged(group) = &logging["LogGroup"] else {
            panic!("{function}: LogGroup is not a !Ref");
        };
        let group = resource(&template, group.value.as_str().unwrap());
        assert_eq!(group["Type"], "AWS::Logs::LogGroup");
        assert!(
            serde_yaml::to_string(&group["Properties"]["RetentionInDays"])
                .unwrap()
                .contains("LogRetentionDays")
        );
    }
    let api = &resource(&template, "Api")["Properties"];
    assert!(
        serde_yaml::to_string(&api["TracingEnabled"])
            .unwrap()
            .contains("TracingOn")
    );
    // The access log: JSON with the request id, status, latency and the authorizer's
    // status, to a group with retention; never a header or the query string.
    let access = &api["AccessLogSetting"];
    let text = access["Format"].as_str().unwrap();
    serde_json::from_str::<serde_json::Value>(text).expect("the access log format is JSON");
    for field in [
        "$context.requestId",
        "$context.status",
        "$context.responseLatency",
        "$context.authorizer.status",
    ] {
        assert!(text.contains(field), "{field}");
    }
    for never in [
        "$input.params",
        "$context.identity.apiKey",
        "Authorization",
        "querystring",
    ] {
        assert!(!text.contains(never), "{never}");
    }
    assert!(
        serde_yaml::to_string(&access["DestinationArn"])
            .unwrap()
            .contains("ApiAccessLogGroup")
    );
}

#[test]
fn alarms_watch_authorizer_errors_5xx_reuse_lockouts_recovery_codes_and_rotations_and_notify_one_topic()
 {
    let template = template();
    let all_alarms: Vec<(&str, &Value)> = template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
        .map(|(name, r)| (name.as_str().unwrap(), r))
        .collect();
    for (name, alarm) in &all_alarms {
        let actions = serde_yaml::to_string(&alarm["Properties"]["AlarmActions"]).unwrap();
        assert!(actions.contains("AlarmTopic"), "{name}");
        assert_eq!(
            alarm["Properties"]["TreatMissingData"], "notBreaching",
            "{name}"
        );
    }
    // Rotation: a failed step (the rotation function's own Errors), and a signing key older
    // than two rotation periods (the gauge each signer emits when it reads its set).
    let rotation_errors = &resource(&template, "KeyRotationErrorAlarm")["Properties"];
    assert_eq!(rotation_errors["Namespace"], "AWS/Lambda");
    assert_eq!(rotation_errors["MetricName"], "Errors");
    assert!(
        serde_yaml::to_string(&rotation_errors["Dimensions"][0]["Value"])
            .unwrap()
            .contains("KeyRotationFunction")
    );
    let age = &resource(&template, "SigningKeyAgeAlarm")["Properties"];
    let stat = &age["Metrics"][0]["MetricStat"];
    assert_eq!(
        stat["Metric"]["MetricName"],
        jwt_auth_core::crypto::keys::live::KEY_SET_AGE_METRIC
    );
    assert_eq!(stat["Metric"]["Dimensions"][0]["Value"], "login");
    assert_eq!(age["Metrics"][1]["Expression"], "age / 172800");
    assert!(
        serde_yaml::to_string(&age["Threshold"])
            .unwrap()
            .contains("KeyRotationDays")
    );

    let alarms: Vec<(&str, &Value)> = all_alarms
        .into_iter()
        .filter(|(name, _)| !matches!(*name, "KeyRotationErrorAlarm" | "SigningKeyAgeAlarm"))
        .collect();
    let metrics: BTreeSet<&str> = alarms
        .iter()
        .map(|(_, alarm)| alarm["Properties"]["MetricName"].as_str().unwrap())
        .collect();
    assert_eq!(
        metrics,
        BTreeSet::from([
            "AuthorizerError",
            "5XXError",
            "RefreshReuseDetected",
            "LoginLocked",
            "RecoveryCodeUsed"
        ])
    );
    for (name, alarm) in &alarms {
        let actions = serde_yaml::to_string(&alarm["Properties"]["AlarmActions"]).unwrap();
        assert!(actions.contains("AlarmTopic"), "{name}");
        assert_eq!(
            alarm["Properties"]["TreatMissingData"], "notBreaching",
            "{name}"
        );
    }
    // The custom metrics are the ones the functions emit (audit.rs), in the namespace the
    // functions are given.
    let emitted: BTreeSet<&str> = jwt_auth_core::audit::SecurityEvent::ALL
        .iter()
        .map(|event| event.parts().2)
        .collect();
    for (name, alarm) in &alarms {
        let metric = alarm["Properties"]["MetricName"].as_str().unwrap();
        if metric != "5XXError" {
            assert!(
                emitted.contains(metric),
                "{name}: {metric} is never emitted"
            );
            assert!(
                serde_yaml::to_string(&alarm["Properties"]["Namespace"])
                    .unwrap()
                    .contains("MetricsNamespace")
            );
        }
    }
    // The Function dimension names what each binary passes to ColdStart::load (which
    // hands it to audit::init).
    for (name, function) in [
        ("AuthorizerErrorAlarm", "authorizer"),
        ("RefreshReuseAlarm", "login"),
        ("LockoutSpikeAlarm", "login"),
        ("RecoveryCodeSpikeAlarm", "login"),
    ] {
        let dimensions = &resource(&template, name)["Properties"]["Dimensions"];
        assert_eq!(dimensions[0]["Name"], "Function", "{name}");
        assert_eq!(dimensions[0]["Value"], function, "{name}");
        let main = std::fs::read_to_string(
            integration_tests::workspace_root().join(format!("functions/{function}/src/main.rs")),
        )
        .unwrap();
        assert!(
            main.contains(&format!("ColdStart::load(\"{function}\")")),
            "{function}"
        );
    }
    // The 5xx alarm's ApiName is the API's Name.
    let api_name =
        serde_yaml::to_string(&resource(&template, "Api")["Properties"]["Name"]).unwrap();
    let alarm_api = serde_yaml::to_string(
        &resource(&template, "Api5xxAlarm")["Properties"]["Dimensions"][0]["Value"],
    )
    .unwrap();
    assert_eq!(api_name, alarm_api);
    assert_eq!(resource(&template, "AlarmTopic")["Type"], "AWS::SNS::Topic");
    assert_eq!(
        resource(&template, "AlarmEmailSubscription")["Condition"],
        "HasAlarmEmail"
    );
    let env = &template["Globals"]["Function"]["Environment"]["Variables"];
    assert!(matches!(&env["METRICS_NAMESPACE"], Value::Tagged(t) if t.tag == "Ref"));
}

/// The document the template registers for its own API is this API's built-in document
/// (the one the backends re-check with), under the path the authorizer reads, which only
/// it may read; and a stack of another API finds what it needs among the exports.
#[test]
fn the_template_registers_this_apis_permissions_where_the_authorizer_reads_them() {
    let template = template();
    let parameter = resource(&template, "ThisApiPermissions");
    assert_eq!(parameter["Type"], "AWS::SSM::Parameter");
    let registered: serde_json::Value =
        serde_json::from_str(parameter["Properties"]["Value"].as_str().unwrap()).unwrap();
    let built_in: serde_json::Value =
        serde_json::from_str(jwt_auth_core::access::routes::THIS_API_DOCUMENT).unwrap();
    assert_eq!(registered, built_in);
    let sub = |value: &Value| match value {
        Value::Tagged(tagged) if tagged.tag == "Sub" => tagged.value.as_str().unwrap().to_string(),
        other => panic!("expected !Sub, found {other:?}"),
    };
    let path = "/${AWS::StackName}/permissions";
    // Named by the API id, which is what a methodArn carries.
    assert_eq!(
        sub(&parameter["Properties"]["Name"]),
        format!("{path}/${{Api}}")
    );
    let variables =
        &resource(&template, "AuthorizerFunction")["Properties"]["Environment"]["Variables"];
    assert_eq!(sub(&variables["PERMISSIONS_PATH"]), path);
    let ssm_of = |function: &str| -> Vec<(String, String)> {
        granted_actions(&template, function)
            .into_iter()
            .filter(|(action, _)| action.starts_with("ssm:"))
            .collect()
    };
    let issuer_parameter = ":parameter/${AWS::StackName}/token-issuer";
    let authorizer_reads = ssm_of("AuthorizerFunction");
    assert_eq!(authorizer_reads.len(), 2, "{authorizer_reads:?}");
    assert_eq!(authorizer_reads[0].0, "ssm:GetParametersByPath");
    assert!(
        authorizer_reads[0]
            .1
            .trim_end()
            .ends_with(&format!(":parameter{path}")),
        "{}",
        authorizer_reads[0].1
    );
    // The issuer parameter, by its exact name: a GetParameter of no other parameter.
    for function in ["AuthorizerFunction", "LoginFunction"] {
        let reads = ssm_of(function);
        let issuer_read = reads.last().unwrap();
        assert_eq!(issuer_read.0, "ssm:GetParameter", "{function}");
        assert!(
            issuer_read.1.trim_end().ends_with(issuer_parameter),
            "{function}: {}",
            issuer_read.1
        );
    }
    assert_eq!(ssm_of("LoginFunction").len(), 1);
    for function in ["UsersFunction", "KeyRotationFunction"] {
        assert!(
            ssm_of(function).is_empty(),
            "{function} reads nothing in SSM"
        );
    }
    for (output, export) in [
        ("AuthorizerFunctionArn", "AuthorizerFunctionArn"),
        ("PermissionsPath", "PermissionsPath"),
        ("TokenIssuerValue", "TokenIssuer"),
        ("TokenAudienceValue", "TokenAudience"),
        ("JwksUrl", "JwksUrl"),
    ] {
        assert_eq!(
            sub(&template["Outputs"][output]["Export"]["Name"]),
            format!("${{AWS::StackName}}-{export}"),
            "{output}"
        );
    }
    assert_eq!(sub(&template["Outputs"]["PermissionsPath"]["Value"]), path);
}

/// `TokenIssuer` left empty (the default) is the API's URL: the stack writes the ApiUrl to
/// the SSM parameter the functions are told to read (a function's environment naming its
/// API would be a circular dependency), the output says the same URL, no other issuer is
/// accepted by default, and a new stage name reaches the functions' configuration (so no
/// warm instance keeps the issuer of the old stage).
#[test]
fn the_default_issuer_is_the_api_url_written_where_the_functions_read_it() {
    let template = template();
    let parameters = &template["Parameters"];
    assert_eq!(parameters["TokenIssuer"]["Default"], "");
    assert_eq!(parameters["PreviousTokenIssuer"]["Default"], "");
    let tagged = |value: &Value, tag: &str| -> Value {
        match value {
            Value::Tagged(tagged) if tagged.tag == tag => tagged.value.clone(),
            other => panic!("expected !{tag}, found {other:?}"),
        }
    };
    let api_url = tagged(&template["Outputs"]["ApiUrl"]["Value"], "Sub");
    let parameter = resource(&template, "TokenIssuerParameter");
    assert_eq!(parameter["Condition"], "IssuerIsApiUrl");
    assert_eq!(tagged(&parameter["Properties"]["Value"], "Sub"), api_url);
    let name = tagged(&parameter["Properties"]["Name"], "Sub");
    assert_eq!(name, "/${AWS::StackName}/token-issuer");
    let env = &template["Globals"]["Function"]["Environment"]["Variables"];
    // Exactly one of the two is set, by the same condition.
    let by_condition = |variable: &str| {
        let branches = tagged(&env[variable], "If");
        assert_eq!(branches[0], "IssuerIsApiUrl", "{variable}");
        (branches[1].clone(), branches[2].clone())
    };
    let (issuer_when_url, issuer_otherwise) = by_condition("JWT_ISSUER");
    assert_eq!(issuer_when_url, "");
    assert_eq!(tagged(&issuer_otherwise, "Ref"), "TokenIssuer");
    let (parameter_when_url, parameter_otherwise) = by_condition("JWT_ISSUER_PARAMETER");
    assert_eq!(tagged(&parameter_when_url, "Sub"), name);
    assert_eq!(parameter_otherwise, "");
    assert_eq!(tagged(&env["STAGE_NAME"], "Ref"), "StageName");
    let condition = tagged(&template["Conditions"]["IssuerIsApiUrl"], "Equals");
    assert_eq!(tagged(&condition[0], "Ref"), "TokenIssuer");
    assert_eq!(condition[1], "");
    let output = tagged(&template["Outputs"]["TokenIssuerValue"]["Value"], "If");
    assert_eq!(output[0], "IssuerIsApiUrl");
    assert_eq!(tagged(&output[1], "Sub"), api_url);
    // `sam local invoke` reads no SSM: env.json empties the parameter, so the issuer is the
    // local default.
    let local: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("events/env.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(local["Parameters"]["JWT_ISSUER_PARAMETER"], "");
}

/// `openapi.yaml` documents exactly this API's routes, public where the document says
/// public (`security: []`), as the permissions document and the template do.
#[test]
fn openapi_yaml_documents_exactly_the_routes_of_this_apis_permissions_document() {
    let openapi: Value = serde_yaml::from_str(
        &std::fs::read_to_string(workspace_root().join("openapi.yaml")).unwrap(),
    )
    .unwrap();
    let mut documented = BTreeSet::new();
    for (path, operations) in openapi["paths"].as_mapping().unwrap() {
        for (method, operation) in operations.as_mapping().unwrap() {
            let method = method.as_str().unwrap().to_ascii_uppercase();
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
                continue;
            }
            let public = operation
                .get("security")
                .and_then(Value::as_sequence)
                .is_some_and(Vec::is_empty);
            documented.insert((method, path.as_str().unwrap().to_string(), !public));
        }
    }
    let in_document: BTreeSet<(String, String, bool)> = routes()
        .iter()
        .map(|route| {
            (
                route.method.clone(),
                route.path.clone(),
                route.access != Access::Public,
            )
        })
        .collect();
    assert_eq!(documented, in_document);
}
