//! `jwt-auth`: the one CLI of lambda-jwt-auth: `serve` (the API locally), `users` (admin, local or AWS), `keys` (local key rotation), `event` (test events), `permissions` (check a permissions document).

use clap::{Parser, Subcommand};
use jwt_auth_cli::commands::{event, keys, permissions, serve, users};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "jwt-auth",
    version,
    about = "lambda-jwt-auth: serve the API locally, administer users (local or AWS), manage token keys, mint test events"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the whole API on localhost through an emulated API Gateway.
    Serve(serve::ServeArgs),
    /// Create, list, disable or reset users in a DynamoDB table (DynamoDB Local or AWS).
    Users(users::UsersArgs),
    /// Print a fresh event for `cargo lambda invoke` / `sam local invoke`.
    Event(event::EventArgs),
    /// List, rotate or revoke the token keys of a local deployment (DynamoDB Local).
    Keys(keys::KeysArgs),
    /// Check a permissions document offline (against a template and the declared roles).
    Permissions(permissions::PermissionsArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Users(args) => users::run(args, &mut std::io::stdin().lock())
            .await
            .map(|report| print!("{report}")),
        Command::Event(args) => event::run(args),
        Command::Keys(args) => keys::run(args).await.map(|report| print!("{report}")),
        Command::Permissions(args) => permissions::run(args).map(|report| print!("{report}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("jwt-auth: {message}");
            ExitCode::FAILURE
        }
    }
}
