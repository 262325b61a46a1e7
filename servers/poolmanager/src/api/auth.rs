//! Bearer-token auth: the admin token opens every endpoint, the user token the user
//! endpoints (apply, release, a user's clusters).

use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::SecurityScheme;

use super::error::ApiError;

/// The tokens the server accepts.
#[derive(Clone)]
pub struct Tokens {
    /// Opens every endpoint.
    pub admin: String,
    /// Opens the user endpoints; `None` leaves them to the admin token.
    pub user: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("admin", &"<redacted>")
            .field("user", &self.user.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Who called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The operator, with the admin token.
    Admin,
    /// The front-end service, with the user token.
    User,
}

impl Role {
    /// On whose behalf a call acts on a cluster: the admin token as the operator; the
    /// user token only on behalf of the user it names (`user_id`, required).
    pub fn actor(self, user_id: Option<&str>) -> Result<poolcore::Actor<'_>, ApiError> {
        match (self, user_id) {
            (Role::Admin, None) => Ok(poolcore::Actor::Operator),
            (_, Some(user)) => Ok(poolcore::Actor::User(user)),
            (Role::User, None) => Err(ApiError::invalid(
                "user_id is required with the user token: it names the user the cluster is applied to",
            )),
        }
    }
}

/// Compares the SHA-256 digests in constant time, so timing tells neither where the
/// tokens differ nor how long the right one is.
pub(crate) fn same(a: &str, b: &str) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    Sha256::digest(a.as_bytes())
        .as_slice()
        .ct_eq(Sha256::digest(b.as_bytes()).as_slice())
        .into()
}

fn role_of(req: &Request, bearer: &Bearer) -> Result<Role, poem::Error> {
    let tokens = req.data::<Tokens>().ok_or_else(|| {
        poem::Error::from_string(
            "tokens are not configured",
            poem::http::StatusCode::INTERNAL_SERVER_ERROR,
        )
    })?;
    if same(&bearer.token, &tokens.admin) {
        return Ok(Role::Admin);
    }
    if tokens
        .user
        .as_deref()
        .is_some_and(|user| same(&bearer.token, user))
    {
        return Ok(Role::User);
    }
    Err(ApiError::unauthorized("the bearer token is not valid").into())
}

async fn check_admin(req: &Request, bearer: Bearer) -> poem::Result<Role> {
    match role_of(req, &bearer)? {
        Role::Admin => Ok(Role::Admin),
        Role::User => Err(ApiError::forbidden("this endpoint needs the admin token").into()),
    }
}

async fn check_user(req: &Request, bearer: Bearer) -> poem::Result<Role> {
    role_of(req, &bearer)
}

/// The admin bearer token.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_admin")]
pub struct AdminAuth(pub Role);

/// The user (or admin) bearer token.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_user")]
pub struct UserAuth(pub Role);
