//! Credentials, acting user and team scope (API.md §2).

use sha2::{Digest, Sha256};
use store::{Tenant, User};
use wire::{ApiError, ErrorCode};

use crate::{db, Engine};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    Personal { user_id: String },
    Team { team_id: String },
}

/// An authenticated API key (never the secret).
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub id: String,
    pub kind: KeyKind,
    pub created_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Personal key without `team_id`: lists see the personal workspace, lookups see the
    /// personal workspace and all the user's teams.
    Unscoped,
    /// Restricted to one team (explicit `team_id`, or implied by a team key).
    Team(String),
}

/// Who is calling, as whom, and where.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key: KeyInfo,
    pub user: User,
    pub scope: Scope,
    /// The acting user's team memberships: (team id, role).
    pub memberships: Vec<(String, String)>,
}

impl Caller {
    pub fn user_id(&self) -> &str {
        &self.user.id
    }

    /// The principals session grants can name for this user (store-side read filter).
    /// The team a team-scoped key is limited to.
    pub fn scope_team(&self) -> Option<&str> {
        match &self.scope {
            Scope::Team(t) => Some(t),
            Scope::Unscoped => None,
        }
    }

    pub fn reader(&self) -> store::Reader {
        store::Reader {
            user_id: self.user.id.clone(),
            team_ids: self.memberships.iter().map(|(t, _)| t.clone()).collect(),
            organization_id: self.user.organization_id.clone(),
        }
    }

    /// The workspace lists read and creates write to.
    pub fn home_tenant(&self) -> Tenant {
        match &self.scope {
            Scope::Unscoped => Tenant::Personal(self.user.id.clone()),
            Scope::Team(t) => Tenant::Team(t.clone()),
        }
    }

    /// Whether an object placed in (team, personal owner) is visible (§2.4, §2.5).
    pub fn can_see(&self, team_id: Option<&str>, owner_user_id: &str) -> bool {
        match (&self.scope, team_id) {
            (Scope::Team(t), Some(obj_team)) => t == obj_team,
            (Scope::Team(_), None) => false,
            (Scope::Unscoped, None) => owner_user_id == self.user.id,
            (Scope::Unscoped, Some(obj_team)) => self.memberships.iter().any(|(t, _)| t == obj_team),
        }
    }

    pub fn team_role(&self, team_id: &str) -> Option<&str> {
        self.memberships.iter().find(|(t, _)| t == team_id).map(|(_, r)| r.as_str())
    }

    pub fn is_org_admin(&self) -> bool {
        self.user.org_role == "admin"
    }
}

pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

impl Engine {
    /// Looks a bearer secret up by its hash. `None` = unknown or revoked.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<KeyInfo>, ApiError> {
        if secret.is_empty() || secret.len() > 512 {
            return Ok(None);
        }
        let hash = hash_secret(secret);
        let Some(key) = self.store.api_key_by_hash(&hash).await.map_err(db)? else {
            return Ok(None);
        };
        // The lookup is by hash; compare again in constant time for defence in depth.
        if !bool::from(subtle::ConstantTimeEq::ct_eq(key.secret_hash.as_slice(), hash.as_slice())) || key.revoked_at.is_some() {
            return Ok(None);
        }
        let kind = match (key.user_id, key.team_id) {
            (Some(user_id), None) => KeyKind::Personal { user_id },
            (None, Some(team_id)) => KeyKind::Team { team_id },
            _ => return Ok(None),
        };
        Ok(Some(KeyInfo { id: key.id, kind, created_by: key.created_by }))
    }

    /// v1 rules (§2.3, §2.4): acting user from `x-auth-key`/`user_id`, scope from
    /// `team_id`/`project_id`.
    pub async fn resolve_caller(&self, key: &KeyInfo, acting: Option<&str>, team_param: Option<&str>) -> Result<Caller, ApiError> {
        let acting = acting.map(str::trim).filter(|s| !s.is_empty());
        let team_param = team_param.map(str::trim).filter(|s| !s.is_empty());
        match &key.kind {
            KeyKind::Personal { user_id } => {
                if let Some(a) = acting {
                    if a != user_id {
                        return Err(ApiError::new(
                            ErrorCode::IdentityMismatch,
                            "This personal API key can only act as its owner; x-auth-key/user_id names another user.",
                        ));
                    }
                }
                let user = self.load_user(user_id).await?;
                let memberships = self.memberships(user_id).await?;
                let scope = match team_param {
                    None => Scope::Unscoped,
                    Some(t) => {
                        if !memberships.iter().any(|(m, _)| m == t) {
                            return Err(ApiError::new(ErrorCode::TeamNotFound, format!("Team {t} does not exist or you are not a member.")).param("team_id"));
                        }
                        Scope::Team(t.to_string())
                    }
                };
                store::audit::set_user(&user.id);
                Ok(Caller { key: key.clone(), user, scope, memberships })
            }
            KeyKind::Team { team_id } => {
                if let Some(t) = team_param {
                    if t != team_id {
                        return Err(ApiError::new(ErrorCode::TeamMismatch, "This team API key belongs to another team than team_id.").param("team_id"));
                    }
                }
                let Some(a) = acting else {
                    return Err(ApiError::new(
                        ErrorCode::UserIdRequired,
                        "A team API key must name the acting user: send x-auth-key: <user_id> (GUMLOOP_USER_ID).",
                    ));
                };
                if self.store.membership(team_id, a).await.map_err(db)?.is_none() {
                    return Err(ApiError::new(ErrorCode::NotTeamMember, format!("User {a} is not a member of this key's team.")));
                }
                let user = self.load_user(a).await?;
                let memberships = self.memberships(a).await?;
                store::audit::set_user(&user.id);
                Ok(Caller { key: key.clone(), user, scope: Scope::Team(team_id.clone()), memberships })
            }
        }
    }

    async fn load_user(&self, id: &str) -> Result<User, ApiError> {
        self.store.user(id).await.map_err(db)?.ok_or_else(|| ApiError::new(ErrorCode::InvalidApiKey, "The API key's user no longer exists."))
    }

    async fn memberships(&self, user_id: &str) -> Result<Vec<(String, String)>, ApiError> {
        Ok(self.store.teams_of_user(user_id).await.map_err(db)?.into_iter().map(|(t, r)| (t.id, r)).collect())
    }
}
