//! `jwt-auth users …`: user administration for operators, against a DynamoDB table
//! (DynamoDB Local with --dynamodb-endpoint, or the deployed table with the usual AWS
//! credentials). Passwords are read without echo, or from stdin; never from a flag.

use jwt_auth_core::crypto::password::{PasswordHasher, check_new_password};
use jwt_auth_core::startup::aws::local_dynamodb_client;
use jwt_auth_core::store::Actor;
use jwt_auth_core::store::dynamodb::{DynamoUserStore, create_table};
use jwt_auth_core::store::{NewUser, PasswordWrite, UserChanges, UserStore};
use jwt_auth_core::users::user::{
    DeclaredRoles, ROLE_NAME_RULE, Role, normalize_username, validate_display_name,
};
use secrecy::SecretString;
use std::io::BufRead;

#[derive(clap::Parser)]
#[command(name = "users")]
pub struct UsersArgs {
    /// The users table (the stack's UsersTableName output).
    #[arg(long, env = "USERS_TABLE")]
    table: String,
    /// DynamoDB endpoint, e.g. http://127.0.0.1:8000 for DynamoDB Local (the table is
    /// created there if missing). Without it, AWS is used with the default credentials.
    #[arg(long, env = "DYNAMODB_ENDPOINT")]
    dynamodb_endpoint: Option<String>,
    /// The roles the deployment declares (its Roles parameter): a user may be given only
    /// one of these.
    #[arg(long, env = "ROLES", default_value = "admin,customer", value_parser = parse_roles)]
    roles: DeclaredRoles,
    #[command(subcommand)]
    action: UsersAction,
}

#[derive(clap::Subcommand)]
enum UsersAction {
    /// Create a user (asks for the password twice, without echo).
    Create {
        #[arg(long)]
        username: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Display name (defaults to the username).
        #[arg(long)]
        name: Option<String>,
        /// Read the password from the first line of stdin instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Create the demo users of `jwt-auth serve` (admin, alice, bob; their passwords are
    /// in the README) that are missing: DynamoDB Local only, never a table on AWS.
    Demo,
    /// List users in username order.
    List,
    /// Disable a user: it can no longer log in.
    Disable {
        #[arg(long)]
        username: String,
    },
    /// Re-enable a disabled user.
    Enable {
        #[arg(long)]
        username: String,
    },
    /// Change a user's role (revokes its tokens when the role really changes).
    SetRole {
        #[arg(long)]
        username: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
    /// Revoke every token issued to a user so far ("log out everywhere").
    RevokeTokens {
        #[arg(long)]
        username: String,
    },
    /// Delete a user.
    Delete {
        #[arg(long)]
        username: String,
    },
    /// Set a new password.
    ResetPassword {
        #[arg(long)]
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a user's second factor (a lost phone) and end every session of the user.
    ResetSecondFactor {
        #[arg(long)]
        username: String,
    },
}

fn parse_role(raw: &str) -> Result<Role, String> {
    Role::parse(raw).ok_or_else(|| ROLE_NAME_RULE.to_string())
}

fn parse_roles(raw: &str) -> Result<DeclaredRoles, String> {
    DeclaredRoles::parse_list(raw)
}

/// Runs one admin action and returns what to print. `--password-stdin` reads `input`.
pub async fn run(args: UsersArgs, input: &mut dyn BufRead) -> Result<String, String> {
    let mut report = String::new();
    // Checked before any AWS configuration is even loaded.
    if let UsersAction::Create { role, .. } | UsersAction::SetRole { role, .. } = &args.action {
        args.roles.check(*role)?;
    }
    if matches!(args.action, UsersAction::Demo) && args.dynamodb_endpoint.is_none() {
        return Err("demo users go into DynamoDB Local only: set --dynamodb-endpoint".into());
    }
    let client = match &args.dynamodb_endpoint {
        Some(endpoint) => {
            let client = local_dynamodb_client(endpoint);
            create_table(&client, &args.table).await.map_err(describe)?;
            client
        }
        None => aws_sdk_dynamodb::Client::new(
            &aws_config::defaults(aws_config::BehaviorVersion::latest())
                .load()
                .await,
        ),
    };
    let store = DynamoUserStore::new(client, args.table.clone());
    match args.action {
        UsersAction::Demo => {
            local_gateway::app::seed_demo_users(&store, &PasswordHasher::new())
                .await
                .map_err(describe)?;
            report = "demo users: admin, alice, bob (passwords in the README)\n".into();
        }
        UsersAction::Create {
            username,
            role,
            name,
            password_stdin,
        } => {
            let username = normalize_username(&username)?;
            let name = validate_display_name(name.as_deref().unwrap_or(&username))?;
            let password = read_new_password(password_stdin, input, &username)?;
            let password_hash = PasswordHasher::new()
                .hash(&password)
                .map_err(|err| err.to_string())?;
            let user = store
                .create_user(
                    NewUser {
                        username,
                        name,
                        role,
                        password_hash,
                    },
                    jwt_auth_core::startup::clock::unix_now(),
                    Actor::Operator,
                )
                .await
                .map_err(describe)?;
            report = format!("created {} ({}) id {}\n", user.username, user.role, user.id);
        }
        UsersAction::List => {
            let mut after = None;
            report.push_str(&format!(
                "{:<32}  {:<24}  {:<8}  state\n",
                "id", "username", "role"
            ));
            loop {
                let page = store
                    .list_users(100, after.as_ref())
                    .await
                    .map_err(describe)?;
                for user in &page.users {
                    let state = if user.disabled { "disabled" } else { "active" };
                    report += &format!(
                        "{:<32}  {:<24}  {:<8}  {state}\n",
                        user.id,
                        user.username,
                        user.role.as_str()
                    );
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        UsersAction::Disable { username } => report = set_disabled(&store, &username, true).await?,
        UsersAction::Enable { username } => report = set_disabled(&store, &username, false).await?,
        UsersAction::SetRole { username, role } => {
            let record = find(&store, &username).await?;
            let changes = UserChanges {
                role: Some(role),
                ..UserChanges::default()
            };
            let revokes = changes.revokes_tokens_of(&record.user);
            let user = store
                .update_user(&record.user.id, changes, Actor::Operator)
                .await
                .map_err(describe)?;
            report = if revokes {
                format!(
                    "{} is now {} (earlier tokens revoked)\n",
                    user.username, user.role
                )
            } else {
                format!(
                    "{} already was {} (nothing changed; use revoke-tokens to end its sessions)\n",
                    user.username, user.role
                )
            };
        }
        UsersAction::RevokeTokens { username } => {
            let record = find(&store, &username).await?;
            store
                .revoke_all_tokens(&record.user.id, Actor::Operator)
                .await
                .map_err(describe)?;
            report = format!(
                "every token of {} issued so far is revoked\n",
                record.user.username
            );
        }
        UsersAction::Delete { username } => {
            let record = find(&store, &username).await?;
            store
                .delete_user(&record.user.id, Actor::Operator)
                .await
                .map_err(describe)?;
            report = format!("deleted {}\n", record.user.username);
        }
        UsersAction::ResetPassword {
            username,
            password_stdin,
        } => {
            let record = find(&store, &username).await?;
            let password = read_new_password(password_stdin, input, &record.user.username)?;
            let password_hash = PasswordHasher::new()
                .hash(&password)
                .map_err(|err| err.to_string())?;
            store
                .set_password_hash(
                    &record.user.id,
                    password_hash,
                    PasswordWrite::Reset,
                    Actor::Operator,
                )
                .await
                .map_err(describe)?;
            report = format!(
                "password reset for {} (every earlier session of it ended)\n",
                record.user.username
            );
        }
        UsersAction::ResetSecondFactor { username } => {
            let record = find(&store, &username).await?;
            // As the admin route does it: sessions, the factor, its code counter.
            jwt_auth_core::users::admin::remove_second_factor(
                &store,
                &record.user.id,
                Actor::Operator,
            )
            .await
            .map_err(describe)?;
            report = format!(
                "second factor removed for {} (every earlier session of it ended; it signs in with the password until it enrols again)\n",
                record.user.username
            );
        }
    }
    Ok(report)
}

async fn find(
    store: &DynamoUserStore,
    username: &str,
) -> Result<jwt_auth_core::store::LoginRecord, String> {
    let username = normalize_username(username)?;
    store
        .find_login(&username)
        .await
        .map_err(describe)?
        .ok_or_else(|| format!("no user named {username}"))
}

async fn set_disabled(
    store: &DynamoUserStore,
    username: &str,
    disabled: bool,
) -> Result<String, String> {
    let record = find(store, username).await?;
    let user = store
        .set_disabled(&record.user.id, disabled, Actor::Operator)
        .await
        .map_err(describe)?;
    Ok(format!(
        "{} is now {}\n",
        user.username,
        if user.disabled { "disabled" } else { "active" }
    ))
}

fn read_new_password(
    from_stdin: bool,
    input: &mut dyn BufRead,
    username: &str,
) -> Result<SecretString, String> {
    let password = if from_stdin {
        let mut line = String::new();
        input
            .read_line(&mut line)
            .map_err(|err| format!("cannot read the password from stdin: {err}"))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        let first = rpassword::prompt_password("Password: ")
            .map_err(|err| format!("cannot read the password: {err}"))?;
        let second = rpassword::prompt_password("Repeat:   ")
            .map_err(|err| format!("cannot read the password: {err}"))?;
        if first != second {
            return Err("the passwords differ".into());
        }
        first
    };
    let password = SecretString::from(password);
    check_new_password(&password, username).map_err(|err| err.to_string())?;
    Ok(password)
}

fn describe(err: jwt_auth_core::store::StoreError) -> String {
    jwt_auth_core::web::error::error_chain(&err)
}
