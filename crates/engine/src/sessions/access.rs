//! Session sharing (S17, S18) and the rights it grants (§2.5): grantees read; `editor`
//! grantees also use the session; only the creator changes access.

use store::SessionRecord;
use wire::sessions::{
    AccessChangeRequest, AccessPerson, AccessRole, AccessTeam, GrantType, GrantsVisibility, ItemAccess, ItemAccessChangeResponse, ItemAccessResponse, LinkMode,
    OrganizationAccess,
};
use wire::{ApiError, ErrorCode};

use super::api::session_not_found;
use crate::{db, Caller, Engine};

/// What a caller may do with one session.
#[derive(Debug, Clone, Copy)]
pub struct Rights {
    pub visible: bool,
    pub read: bool,
    pub edit: bool,
}

impl Engine {
    pub async fn session_rights(&self, caller: &Caller, s: &SessionRecord) -> Result<Rights, ApiError> {
        if s.creator_user_id == caller.user.id {
            let visible = self.session_visible(caller, s);
            return Ok(Rights { visible, read: visible, edit: visible });
        }
        let grants = self.store.session_grants(&s.id).await.map_err(db)?;
        let mut role: Option<&str> = None;
        for (kind, principal, r) in &grants {
            let applies = match kind.as_str() {
                "person" => *principal == caller.user.id,
                "team" => caller.team_role(principal).is_some(),
                "organization" => *principal == caller.user.organization_id,
                _ => false,
            };
            if applies && role != Some("editor") {
                role = Some(r.as_str());
            }
        }
        let visible = role.is_some() || self.session_visible(caller, s);
        Ok(Rights { visible, read: role.is_some(), edit: role == Some("editor") })
    }

    /// The session for an action needing `edit` (use) or only read.
    pub async fn session_with_right(&self, caller: &Caller, id: &str, edit: bool) -> Result<SessionRecord, ApiError> {
        let s = self.store.session(id).await.map_err(db)?.ok_or_else(|| session_not_found(id))?;
        let r = self.session_rights(caller, &s).await?;
        if !r.visible {
            return Err(session_not_found(id));
        }
        if !(if edit { r.edit } else { r.read }) {
            return Err(ApiError::new(
                ErrorCode::PermissionDenied,
                if edit {
                    "You may read this session but not send to it (viewer access)."
                } else {
                    "You have no access to this session; ask its creator to share it."
                },
            ));
        }
        Ok(s)
    }

    async fn creator_session(&self, caller: &Caller, id: &str) -> Result<SessionRecord, ApiError> {
        let s = self.session_with_right(caller, id, false).await?;
        if s.creator_user_id != caller.user.id {
            return Err(ApiError::new(ErrorCode::PermissionDenied, "Only the session's creator may view or change its access."));
        }
        Ok(s)
    }

    async fn item_access(&self, s: &SessionRecord) -> Result<ItemAccess, ApiError> {
        let grants = self.store.session_grants(&s.id).await.map_err(db)?;
        self.access_from_grants(grants, false).await
    }

    /// The access view of `(kind, principal, role)` grants; `team_placed`: the object
    /// lives in a team, so it is team-visible without grants.
    pub(crate) async fn access_from_grants(&self, grants: Vec<(String, String, String)>, team_placed: bool) -> Result<ItemAccess, ApiError> {
        let role_of = |r: &str| if r == "editor" { AccessRole::Editor } else { AccessRole::Viewer };
        let mut people = Vec::new();
        let mut teams = Vec::new();
        let mut org = None;
        for (kind, principal, role) in grants {
            match kind.as_str() {
                "person" => {
                    if let Some(u) = self.store.user(&principal).await.map_err(db)? {
                        let name = [u.first_name.clone(), u.last_name.clone()].into_iter().flatten().collect::<Vec<_>>().join(" ");
                        people.push(AccessPerson {
                            email: u.email.clone().unwrap_or_default(),
                            name: (!name.is_empty()).then_some(name),
                            role: role_of(&role),
                        });
                    }
                }
                "team" => teams.push(AccessTeam { team_id: principal, role: role_of(&role) }),
                "organization" => org = Some(OrganizationAccess { role: role_of(&role) }),
                _ => {}
            }
        }
        let grants_visibility = if org.is_some() {
            GrantsVisibility::Organization
        } else if !teams.is_empty() || team_placed {
            GrantsVisibility::Team
        } else if !people.is_empty() {
            GrantsVisibility::Shared
        } else {
            GrantsVisibility::Private
        };
        Ok(ItemAccess { grants_visibility, people, teams, organization_access: org, link: LinkMode::None, link_role: None, password_protected: false })
    }

    /// S17.
    pub async fn session_access(&self, caller: &Caller, id: &str) -> Result<ItemAccessResponse, ApiError> {
        let s = self.creator_session(caller, id).await?;
        Ok(ItemAccessResponse { access: self.item_access(&s).await? })
    }

    /// S18.
    pub async fn change_session_access(&self, caller: &Caller, id: &str, req: &AccessChangeRequest) -> Result<ItemAccessChangeResponse, ApiError> {
        require_one_change(req)?;
        let s = self.creator_session(caller, id).await?;
        let (upsert, remove) = self.grant_changes(caller, req).await?;
        if let Some(link) = &req.link {
            if link.mode != LinkMode::None {
                return Err(ApiError::not_implemented("Public links").param("link.mode"));
            }
        }
        self.store.change_session_grants(&s.id, &upsert, &remove).await.map_err(db)?;
        Ok(ItemAccessChangeResponse { access: self.item_access(&s).await?, notified: vec![] })
    }

    /// S18/A7 `share` and `remove` as (kind, principal, role) upserts and (kind, principal) removals.
    #[allow(clippy::type_complexity)]
    pub(crate) async fn grant_changes(
        &self,
        caller: &Caller,
        req: &AccessChangeRequest,
    ) -> Result<(Vec<(String, String, String)>, Vec<(String, String)>), ApiError> {
        let mut upsert = Vec::new();
        let mut remove = Vec::new();
        for (field, list) in [("share", &req.share), ("remove", &req.remove)] {
            for (i, item) in list.iter().flatten().enumerate() {
                let p = format!("{field}[{i}]");
                let role = match (field, item.role) {
                    ("share", None) => return Err(ApiError::invalid_request(&format!("{p}.role"), "role must be viewer or editor.")),
                    (_, Some(AccessRole::Editor)) => "editor",
                    _ => "viewer",
                };
                let (kind, principal) = match item.kind {
                    GrantType::Person => {
                        let email = item.email.as_deref().ok_or_else(|| ApiError::invalid_request(&format!("{p}.email"), "email is required."))?;
                        match self.store.user_by_email(&caller.user.organization_id, email).await.map_err(db)? {
                            Some(u) => ("person", u.id),
                            None if field == "remove" => continue,
                            None => return Err(ApiError::invalid_request(&format!("{p}.email"), format!("{email} is not a user of your organization."))),
                        }
                    }
                    GrantType::Team => {
                        let t = item.team_id.as_deref().ok_or_else(|| ApiError::invalid_request(&format!("{p}.team_id"), "team_id is required."))?;
                        if caller.team_role(t).is_none() {
                            return Err(ApiError::new(ErrorCode::TeamNotFound, format!("Team {t} does not exist or you are not a member."))
                                .param(format!("{p}.team_id")));
                        }
                        ("team", t.to_string())
                    }
                    GrantType::Organization => ("organization", caller.user.organization_id.clone()),
                };
                if field == "share" {
                    upsert.push((kind.to_string(), principal, role.to_string()));
                } else {
                    remove.push((kind.to_string(), principal));
                }
            }
        }
        Ok((upsert, remove))
    }
}

/// S18/A7 need at least one of `share`, `remove`, `link`.
pub(crate) fn require_one_change(req: &AccessChangeRequest) -> Result<(), ApiError> {
    if req.share.is_none() && req.remove.is_none() && req.link.is_none() {
        return Err(ApiError::invalid_request("share", "Send at least one of share, remove or link."));
    }
    Ok(())
}
