//! Organizations, users, teams and API keys: bootstrap, CLI operations, X1/X2.

use store::{ApiKey, Team, User};
use wire::tenancy::{Organization as WireOrg, OrganizationsResponse, Team as WireTeam, TeamsResponse};
use wire::{ApiError, ErrorCode};

use crate::auth::hash_secret;
use crate::{db, Caller, Engine, KeyKind};

pub const DEFAULT_ORG: &str = "org_default";

/// A new secret: `olk_` + 43 base62 characters.
pub fn new_secret() -> String {
    format!("olk_{}", wire::ids::random_base62(43))
}

/// Accepted bootstrap secrets: `olk_…` or at least 32 printable characters.
pub fn valid_secret(s: &str) -> bool {
    let printable = s.bytes().all(|b| b.is_ascii_graphic());
    printable && ((s.starts_with("olk_") && s.len() >= 20) || s.len() >= 32)
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: Option<String>,
    pub organization_id: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub org_admin: bool,
}

#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub key_id: String,
    pub secret: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

impl Engine {
    /// Creates a user (and its organization if absent). Idempotent for an existing id.
    pub async fn create_user(&self, u: NewUser) -> Result<User, AdminError> {
        let org = u.organization_id.unwrap_or_else(|| DEFAULT_ORG.to_string());
        if !wire::ids::is_valid_caller_id(&org) {
            return Err(AdminError::Invalid(format!("organization id {org:?} must match ^[A-Za-z0-9_-]{{1,128}}$")));
        }
        let id = u.id.unwrap_or_else(|| wire::ids::new_id("usr"));
        if !wire::ids::is_valid_caller_id(&id) {
            return Err(AdminError::Invalid(format!("user id {id:?} must match ^[A-Za-z0-9_-]{{1,128}}$")));
        }
        let org_name = if org == DEFAULT_ORG { "Default organization".to_string() } else { org.clone() };
        self.store.ensure_organization(&org, &org_name).await?;
        let user = User {
            id: id.clone(),
            organization_id: org,
            email: u.email,
            first_name: u.first_name,
            last_name: u.last_name,
            org_role: if u.org_admin { "admin".into() } else { "member".into() },
            created_at: self.now(),
        };
        self.store.ensure_user(&user).await?;
        self.store.user(&id).await?.ok_or_else(|| AdminError::NotFound(format!("user {id}")))
    }

    pub async fn create_team(&self, id: Option<String>, name: &str, organization_id: Option<String>) -> Result<Team, AdminError> {
        let id = id.unwrap_or_else(|| wire::ids::new_id("team"));
        if !wire::ids::is_valid_caller_id(&id) {
            return Err(AdminError::Invalid(format!("team id {id:?} must match ^[A-Za-z0-9_-]{{1,128}}$")));
        }
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 256 {
            return Err(AdminError::Invalid("team name must be 1 to 256 characters".into()));
        }
        let org = organization_id.unwrap_or_else(|| DEFAULT_ORG.to_string());
        if self.store.organization(&org).await?.is_none() {
            if org == DEFAULT_ORG {
                self.store.ensure_organization(DEFAULT_ORG, "Default organization").await?;
            } else {
                return Err(AdminError::NotFound(format!("organization {org} does not exist; create a user in it first (openloop users create --org {org})")));
            }
        }
        let team = Team { id: id.clone(), organization_id: org, name: name.to_string(), created_at: self.now() };
        self.store.ensure_team(&team).await?;
        self.store.team(&id).await?.ok_or_else(|| AdminError::NotFound(format!("team {id}")))
    }

    pub async fn add_team_member(&self, team_id: &str, user_id: &str, role: &str) -> Result<(), AdminError> {
        if !["admin", "member"].contains(&role) {
            return Err(AdminError::Invalid("role must be admin or member".into()));
        }
        let team = self.store.team(team_id).await?.ok_or_else(|| AdminError::NotFound(format!("team {team_id} does not exist")))?;
        let user = self.store.user(user_id).await?.ok_or_else(|| AdminError::NotFound(format!("user {user_id} does not exist")))?;
        if team.organization_id != user.organization_id {
            return Err(AdminError::Invalid(format!("user {user_id} belongs to another organization than team {team_id}")));
        }
        self.store.set_membership(team_id, user_id, role).await?;
        Ok(())
    }

    /// Creates a personal (user) or team key. `secret` lets bootstrap choose it.
    pub async fn create_key(
        &self,
        owner: &KeyKind,
        name: Option<String>,
        secret: Option<String>,
        created_by: Option<String>,
    ) -> Result<CreatedKey, AdminError> {
        let (user_id, team_id) = match owner {
            KeyKind::Personal { user_id } => {
                self.store.user(user_id).await?.ok_or_else(|| AdminError::NotFound(format!("user {user_id} does not exist")))?;
                (Some(user_id.clone()), None)
            }
            KeyKind::Team { team_id } => {
                self.store.team(team_id).await?.ok_or_else(|| AdminError::NotFound(format!("team {team_id} does not exist")))?;
                (None, Some(team_id.clone()))
            }
        };
        let secret = secret.unwrap_or_else(new_secret);
        let key = ApiKey {
            id: wire::ids::new_id("key"),
            secret_hash: hash_secret(&secret),
            prefix: secret.chars().take(8).collect(),
            name,
            user_id,
            team_id,
            created_by,
            created_at: self.now(),
            revoked_at: None,
        };
        self.store.insert_api_key(&key).await?;
        Ok(CreatedKey { key_id: key.id, secret })
    }

    /// Ensures the bootstrap identity exists (idempotent). Returns a key id when a key
    /// was created now.
    pub async fn ensure_key(&self, owner: &KeyKind, secret: &str, created_by: Option<String>) -> Result<Option<String>, AdminError> {
        if let Some(existing) = self.store.api_key_by_hash(&hash_secret(secret)).await? {
            let same_owner = match owner {
                KeyKind::Personal { user_id } => existing.user_id.as_deref() == Some(user_id),
                KeyKind::Team { team_id } => existing.team_id.as_deref() == Some(team_id),
            };
            if !same_owner {
                return Err(AdminError::Invalid("the bootstrap API key is already registered to another owner; choose another secret".into()));
            }
            return Ok(None);
        }
        Ok(Some(self.create_key(owner, Some("bootstrap".into()), Some(secret.to_string()), created_by).await?.key_id))
    }

    /// K1 (Openloop extension): the caller's personal keys, newest first, and the keys
    /// of the teams it administers.
    pub async fn list_keys_of(&self, caller: &Caller) -> Result<wire::tenancy::ApiKeyListResponse, ApiError> {
        let mut keys = self.store.list_api_keys(Some(caller.user_id()), None).await.map_err(db)?;
        for (team, role) in &caller.memberships {
            if role == "admin" {
                keys.extend(self.store.list_api_keys(None, Some(team)).await.map_err(db)?);
            }
        }
        keys.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
        Ok(wire::tenancy::ApiKeyListResponse { api_keys: keys.iter().map(key_view).collect() })
    }

    /// K2: a new personal key for the caller; the secret is returned this once.
    pub async fn create_key_for(&self, caller: &Caller, req: wire::tenancy::ApiKeyCreateRequest) -> Result<wire::tenancy::ApiKeyCreatedResponse, ApiError> {
        if matches!(caller.key.kind, KeyKind::Team { .. }) {
            return Err(ApiError::new(ErrorCode::TeamKeyNotSupported, "Creating API keys needs a personal API key; team keys are not supported."));
        }
        let name = req.name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
        if name.as_ref().is_some_and(|n| n.chars().count() > 256) {
            return Err(ApiError::new(ErrorCode::InvalidName, "name is longer than 256 characters.").param("name"));
        }
        let owner = KeyKind::Personal { user_id: caller.user_id().to_string() };
        let created = self.create_key(&owner, name, None, Some(caller.user_id().to_string())).await.map_err(|e| match e {
            AdminError::Store(e) => db(e),
            other => ApiError::new(ErrorCode::InvalidRequest, other.to_string()),
        })?;
        let key = self
            .store
            .list_api_keys(Some(caller.user_id()), None)
            .await
            .map_err(db)?
            .into_iter()
            .find(|k| k.id == created.key_id)
            .ok_or_else(|| ApiError::new(ErrorCode::InternalError, "the new key was not found after it was written"))?;
        Ok(wire::tenancy::ApiKeyCreatedResponse { api_key: key_view(&key), secret: created.secret })
    }

    /// K3: revokes one of the caller's keys (or a key of a team it administers). Any
    /// other key, or an unknown id, is `404 api_key_not_found`.
    pub async fn revoke_key_for(&self, caller: &Caller, key_id: &str) -> Result<wire::tenancy::ApiKeyView, ApiError> {
        let visible = self.list_keys_of(caller).await?;
        let Some(view) = visible.api_keys.into_iter().find(|k| k.id == key_id) else {
            return Err(ApiError::new(ErrorCode::ApiKeyNotFound, format!("No API key {key_id:?} of yours.")).param("key_id"));
        };
        if view.revoked_at.is_none() {
            self.store.revoke_api_key(key_id, self.now()).await.map_err(db)?;
        }
        let keys = self.list_keys_of(caller).await?;
        keys.api_keys.into_iter().find(|k| k.id == key_id).ok_or_else(|| ApiError::new(ErrorCode::ApiKeyNotFound, "The key is gone."))
    }

    /// X1: the acting user's teams (team key: only its team), by name.
    pub async fn list_teams(&self, caller: &Caller) -> Result<TeamsResponse, ApiError> {
        let teams = self.store.teams_of_user(&caller.user.id).await.map_err(db)?;
        let only = match &caller.key.kind {
            KeyKind::Team { team_id } => Some(team_id.as_str()),
            KeyKind::Personal { .. } => None,
        };
        Ok(TeamsResponse {
            teams: teams.into_iter().filter(|(t, _)| only.is_none_or(|o| o == t.id)).map(|(t, _)| WireTeam { id: t.id, name: t.name }).collect(),
        })
    }

    /// X2: personal keys only.
    pub async fn list_organizations(&self, caller: &Caller) -> Result<OrganizationsResponse, ApiError> {
        if matches!(caller.key.kind, KeyKind::Team { .. }) {
            return Err(ApiError::new(ErrorCode::TeamKeyNotSupported, "Listing organizations needs a personal API key; team keys are not supported."));
        }
        let orgs = self.store.organizations_of_user(&caller.user.id).await.map_err(db)?;
        Ok(OrganizationsResponse { organizations: orgs.into_iter().map(|o| WireOrg { id: o.id, name: Some(o.name) }).collect() })
    }
}

fn key_view(k: &store::ApiKey) -> wire::tenancy::ApiKeyView {
    wire::tenancy::ApiKeyView {
        id: k.id.clone(),
        prefix: k.prefix.clone(),
        name: k.name.clone(),
        user_id: k.user_id.clone(),
        team_id: k.team_id.clone(),
        created_at: wire::time::v1(k.created_at),
        revoked_at: k.revoked_at.map(wire::time::v1),
    }
}
