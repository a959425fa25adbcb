//! `jwt-auth serve`: the whole API on localhost through the emulated API Gateway, with the
//! demo users and the browser page (what `make run` starts).

use super::parse_algorithm;
use clap::ValueEnum;
use jwt_auth_core::crypto::keys::SigningAlgorithm;
use local_gateway::app::{DEMO_USERS, LocalApi, LocalOptions, StoreChoice};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: std::net::SocketAddr,
    /// The SAM template whose routes, authorizer and cache TTL to follow.
    #[arg(long, default_value = "template.yaml")]
    template: PathBuf,
    /// Use this DynamoDB endpoint (e.g. DynamoDB Local) instead of the in-memory store.
    #[arg(long)]
    dynamodb_endpoint: Option<String>,
    /// The table to use with --dynamodb-endpoint (created if missing).
    #[arg(long, default_value = "users-local")]
    table: String,
    /// Override a template parameter, e.g. -P AuthorizerCacheTtlSeconds=0 (repeatable).
    #[arg(short = 'P', long = "parameter", value_parser = parse_key_value)]
    parameters: Vec<(String, String)>,
    /// Do not create the demo users.
    #[arg(long)]
    no_demo_users: bool,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Token signing algorithm of the key set generated at start: ES256, EdDSA (public
    /// keys at /.well-known/jwks.json) or HS256.
    #[arg(long, default_value = "ES256", value_parser = parse_algorithm)]
    signing_algorithm: SigningAlgorithm,
    /// Where the key set is kept, so `keys rotate` can rotate it (default with
    /// --dynamodb-endpoint: .local/keys-<table>.json; in memory otherwise).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Where to serve the browser client (its own origin; the API's CORS allows it unless
    /// -P CorsAllowOrigin=... says otherwise).
    #[arg(long, default_value = "127.0.0.1:3001")]
    web_addr: std::net::SocketAddr,
    /// Do not serve the browser client.
    #[arg(long)]
    no_web: bool,
    /// Also serve another stack's API behind this one's authorizer, e.g.
    /// examples/orders/template.yaml (repeatable; each on the next port after --addr).
    /// Its functions must be ones this CLI carries: `orders` (the example).
    #[arg(long = "also")]
    also: Vec<PathBuf>,
    /// How often the functions re-read the key set (seconds; 300 when deployed).
    #[arg(long, default_value_t = jwt_auth_core::crypto::keys::live::SIGNER_REFRESH_SECS)]
    key_refresh_secs: u64,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn parse_key_value(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {raw}"))
}

pub async fn run(args: ServeArgs) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match args.log_format {
        LogFormat::Text => builder.compact().init(),
        LogFormat::Json => builder.json().init(),
    }
    let in_memory = args.dynamodb_endpoint.is_none();
    let key_file = args
        .key_file
        .clone()
        .or_else(|| (!in_memory).then(|| super::keys::default_key_file(&args.table)));
    let store = match args.dynamodb_endpoint {
        None => StoreChoice::Memory,
        Some(endpoint) => StoreChoice::Dynamo {
            endpoint: Some(endpoint),
            table: args.table.clone(),
        },
    };
    let mut parameters: HashMap<String, String> = args.parameters.into_iter().collect();
    let web_origin = format!("http://{}", args.web_addr);
    if !args.no_web {
        parameters
            .entry("CorsAllowOrigin".into())
            .or_insert_with(|| web_origin.clone());
    }
    // The demo admin signs in with its password alone, so that the README's walk-through
    // works as written; `-P MfaRequiredRoles=admin` holds it to enrolment as deployed.
    if !args.no_demo_users {
        parameters.entry("MfaRequiredRoles".into()).or_default();
    }
    let second_factor_roles = parameters.get("MfaRequiredRoles").cloned();
    // The example's function holds callers to the auth stack's rule, as its template's
    // MfaRequiredRoles does deployed.
    let orders_rule =
        orders_example::OrdersService::second_factor_rule_from(second_factor_roles.as_deref())?;
    let other_apis = args
        .also
        .iter()
        .map(|template| local_gateway::app::OtherApi {
            template: template.clone(),
            functions: Box::new({
                let second_factor_rule = orders_rule.clone();
                move |users, clock| {
                    // The example's function, with its orders in memory and the re-check on.
                    let orders = orders_example::OrdersService {
                        orders: Arc::new(orders_example::MemoryOrders::default()),
                        revocation: Some(users as Arc<dyn jwt_auth_core::store::UserStore>),
                        clock,
                        second_factor_rule,
                    };
                    HashMap::from([("orders".to_string(), orders_example::in_process(orders))])
                }
            }),
        })
        .collect();
    // Bound first: an issuer left to the template's default is this API's own URL.
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|err| format!("cannot listen on {}: {err}", args.addr))?;
    let address = listener.local_addr().map_err(|err| err.to_string())?;
    let api = LocalApi::build(LocalOptions {
        address: Some(address),
        other_apis,
        template: args.template.clone(),
        store,
        secret: None,
        parameter_overrides: parameters,
        seed_demo_users: !args.no_demo_users,
        clock: jwt_auth_core::startup::clock::Clock::system(),
        signing_algorithm: args.signing_algorithm,
        key_file: key_file.clone(),
        key_refresh_secs: args.key_refresh_secs,
    })
    .await
    .map_err(|err| err.to_string())?;
    let gateway = Arc::new(api.gateway);
    print_banner(
        &gateway,
        address,
        &args.template,
        in_memory,
        !args.no_demo_users,
        args.signing_algorithm,
        key_file.as_deref(),
    );
    println!("  issuer:    {}", api.issuer.issuer_name());
    match second_factor_roles.as_deref() {
        Some("") => println!(
            "  second factor: required of no role (deployed default: admin; -P MfaRequiredRoles=admin)"
        ),
        Some(roles) => println!("  second factor: required of {roles}"),
        None => println!("  second factor: required of the template's default roles"),
    }
    if !args.no_web {
        let web_listener = tokio::net::TcpListener::bind(args.web_addr)
            .await
            .map_err(|err| format!("cannot listen on {}: {err}", args.web_addr))?;
        let api_base = format!("http://{address}{}", gateway.stage_path());
        println!(
            "  web page:  http://{}/ (signs in to the API above)",
            args.web_addr
        );
        tokio::spawn(local_gateway::web::serve(
            web_listener,
            api_base,
            std::future::pending(),
        ));
    }
    let mut port = address.port();
    for (other, template) in api.others.into_iter().zip(&args.also) {
        port += 1;
        let other_address = std::net::SocketAddr::new(address.ip(), port);
        let other_listener = tokio::net::TcpListener::bind(other_address)
            .await
            .map_err(|err| format!("cannot listen on {other_address}: {err}"))?;
        println!(
            "  also:      http://{other_address}{} ({}, behind the same authorizer)",
            other.stage_path(),
            template.display()
        );
        tokio::spawn(local_gateway::server::serve(
            other_listener,
            Arc::new(other),
            std::future::pending(),
        ));
    }
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    local_gateway::server::serve(listener, gateway, shutdown).await;
    Ok(())
}

fn print_banner(
    gateway: &local_gateway::gateway::Gateway,
    address: std::net::SocketAddr,
    template: &std::path::Path,
    in_memory: bool,
    demo_users: bool,
    signing_algorithm: SigningAlgorithm,
    key_file: Option<&std::path::Path>,
) {
    let model = gateway.model();
    let base = format!("http://{address}{}", gateway.stage_path());
    println!("lambda-jwt-auth local API (emulated API Gateway, REST, TOKEN authorizer)");
    println!("  base URL:  {base}");
    println!("  template:  {}", template.display());
    for route in &model.routes {
        let auth = if route.authorized { "token" } else { "public" };
        println!(
            "  route:     {:<6} {:<22} -> {:<6} ({auth})",
            route.method, route.path, route.function
        );
    }
    if let Some(authorizer) = &model.authorizer {
        println!(
            "  authorizer: {} on header {}, policy cache {} s",
            authorizer.name, authorizer.header, authorizer.cache_ttl_secs
        );
    }
    println!(
        "  store:     {}",
        if in_memory {
            "in memory (lost on exit)"
        } else {
            "DynamoDB"
        }
    );
    match key_file {
        None => println!(
            "  signing:   {signing_algorithm}, a key set generated now (public keys at /.well-known/jwks.json)"
        ),
        Some(path) => println!(
            "  signing:   the key set in {} (rotate: jwt-auth keys rotate)",
            path.display()
        ),
    }
    if demo_users {
        println!("  demo users (local only; never seeded in a deployment):");
        for (username, role, password) in DEMO_USERS {
            println!(
                "    {username:<6} {:<8} password: {password}",
                role.as_str()
            );
        }
    }
    println!("  try:       curl -s -X POST {base}/login -H 'content-type: application/json' \\");
    println!(
        "               -d '{{\"username\":\"admin\",\"password\":\"local-admin-password\"}}'"
    );
}
