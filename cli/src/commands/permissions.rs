//! `jwt-auth permissions check FILE [--template T]`: a permissions document checked offline
//! before it is registered: it parses, every role it names is declared, and with a
//! template, it covers exactly the template's API routes (each public route public, each
//! protected one given roles). Prints the routes and who may call each.

use jwt_auth_core::access::document::{Access, PermissionsDocument, RoleSet};
use jwt_auth_core::users::user::DeclaredRoles;
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(clap::Parser)]
#[command(name = "permissions")]
pub struct PermissionsArgs {
    #[command(subcommand)]
    action: PermissionsAction,
}

#[derive(clap::Subcommand)]
enum PermissionsAction {
    /// Check a permissions document (and list its routes).
    Check {
        /// The document (JSON).
        file: PathBuf,
        /// A SAM template whose `Api` events the document must cover exactly.
        #[arg(long)]
        template: Option<PathBuf>,
        /// The roles the authorizer's deployment declares (its Roles parameter).
        #[arg(long, env = "ROLES", default_value = "admin,customer", value_parser = DeclaredRoles::parse_list)]
        roles: DeclaredRoles,
    },
}

pub fn run(args: PermissionsArgs) -> Result<String, String> {
    let PermissionsAction::Check {
        file,
        template,
        roles,
    } = args.action;
    let text =
        std::fs::read_to_string(&file).map_err(|err| format!("{}: {err}", file.display()))?;
    let template = template
        .map(|path| {
            std::fs::read_to_string(&path).map_err(|err| format!("{}: {err}", path.display()))
        })
        .transpose()?;
    check(&text, template.as_deref(), &roles)
}

/// The report of a good document, or every problem found, one per line.
pub fn check(
    document: &str,
    template: Option<&str>,
    roles: &DeclaredRoles,
) -> Result<String, String> {
    let document = PermissionsDocument::parse(document).map_err(|err| err.to_string())?;
    let mut problems = Vec::new();
    for role in document.roles() {
        if !roles.contains(role) {
            problems.push(format!(
                "role {role} is not declared (declared: {roles}): its routes would reach nobody"
            ));
        }
    }
    if let Some(template) = template {
        let routes = template_routes(template)?;
        for ((method, path), public) in &routes {
            match document.route(method, path) {
                None => problems.push(format!("{method} {path} is in the template but not in the document: every call to it would be denied")),
                Some(route) => {
                    let document_public = route.access == Access::Public;
                    if document_public && !public {
                        problems.push(format!("{method} {path} is public in the document but the template runs the authorizer on it"));
                    }
                    if !document_public && *public {
                        problems.push(format!("{method} {path} has roles in the document but the template sets Auth: {{Authorizer: NONE}}"));
                    }
                }
            }
        }
        for route in &document.routes {
            if !routes.contains_key(&(route.method.clone(), route.path.clone())) {
                problems.push(format!(
                    "{} is in the document but the template has no such route",
                    route.key()
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    let mut report = String::new();
    for route in &document.routes {
        let who = match &route.access {
            Access::Public => "public".to_string(),
            Access::SignedIn { roles, own } => {
                let mut who = match roles {
                    RoleSet::Any => "every role".to_string(),
                    RoleSet::Only(listed) => listed
                        .iter()
                        .map(|role| role.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                };
                if let Some(own) = own {
                    if !who.is_empty() {
                        who.push_str("; ");
                    }
                    who.push_str(&format!("anyone whose id is {{{own}}}"));
                }
                who
            }
        };
        report.push_str(&format!("{:<40} {who}\n", route.key()));
    }
    report.push_str(&format!("ok: {} routes\n", document.routes.len()));
    Ok(report)
}

/// The `Api` events of a SAM template's functions: `(METHOD, path)` and whether the event
/// sets `Auth: {Authorizer: NONE}` (public).
fn template_routes(template: &str) -> Result<BTreeMap<(String, String), bool>, String> {
    let template: Value =
        serde_yaml::from_str(template).map_err(|err| format!("the template: {err}"))?;
    let mut routes = BTreeMap::new();
    let Some(resources) = template.get("Resources").and_then(Value::as_mapping) else {
        return Err("the template has no Resources".into());
    };
    for resource in resources.values() {
        if resource.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        let Some(events) = resource
            .get("Properties")
            .and_then(|properties| properties.get("Events"))
            .and_then(Value::as_mapping)
        else {
            continue;
        };
        for event in events.values() {
            if event.get("Type").and_then(Value::as_str) != Some("Api") {
                continue;
            }
            let properties = &event["Properties"];
            let (Some(method), Some(path)) = (
                properties.get("Method").and_then(Value::as_str),
                properties.get("Path").and_then(Value::as_str),
            ) else {
                continue;
            };
            let public = properties
                .get("Auth")
                .and_then(|auth| auth.get("Authorizer"))
                .and_then(Value::as_str)
                == Some("NONE");
            routes.insert((method.to_ascii_uppercase(), path.to_string()), public);
        }
    }
    Ok(routes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Resources:
  Orders:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        List: {Type: Api, Properties: {Method: get, Path: /orders}}
        Create: {Type: Api, Properties: {Method: post, Path: /orders}}
        Health: {Type: Api, Properties: {Method: get, Path: /health, Auth: {Authorizer: NONE}}}
"#;

    fn roles(list: &str) -> DeclaredRoles {
        DeclaredRoles::parse_list(list).unwrap()
    }

    #[test]
    fn a_document_covering_the_template_exactly_is_listed() {
        let document = r#"{"version": 1, "routes": [
            {"route": "GET /orders", "roles": ["support", "admin"]},
            {"route": "POST /orders", "roles": "*"},
            {"route": "GET /health", "public": true}]}"#;
        let report = check(document, Some(TEMPLATE), &roles("admin,customer,support")).unwrap();
        assert!(report.contains("GET /orders"), "{report}");
        assert!(report.contains("support, admin"), "{report}");
        assert!(report.ends_with("ok: 3 routes\n"), "{report}");
    }

    #[test]
    fn every_gap_between_document_template_and_roles_is_named() {
        let document = r#"{"version": 1, "routes": [
            {"route": "GET /orders", "roles": ["auditor"]},
            {"route": "GET /health", "roles": "*"},
            {"route": "DELETE /orders", "roles": ["admin"]}]}"#;
        let problems = check(document, Some(TEMPLATE), &roles("admin,customer")).unwrap_err();
        for expected in [
            "role auditor is not declared",
            "POST /orders is in the template but not in the document",
            "GET /health has roles in the document but the template sets Auth",
            "DELETE /orders is in the document but the template has no such route",
        ] {
            assert!(problems.contains(expected), "{expected}: {problems}");
        }
        assert!(check("{", None, &roles("admin")).is_err());
    }

    #[test]
    fn this_apis_document_covers_this_template() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let template = std::fs::read_to_string(root.join("template.yaml")).unwrap();
        let report = check(
            jwt_auth_core::access::routes::THIS_API_DOCUMENT,
            Some(&template),
            &DeclaredRoles::default(),
        )
        .unwrap();
        assert!(report.ends_with("ok: 18 routes\n"), "{report}");
    }
}
