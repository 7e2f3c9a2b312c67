//! `SkillStore`: skills, their versions and files, listings by scope, grants.

use std::collections::BTreeSet;

use futures::future::join_all;
use store::*;

use super::fixtures::*;
use super::Backend;

fn skill_rec(org: &str, owner: &User, team: Option<&str>) -> SkillRecord {
    SkillRecord {
        id: id("skill"),
        organization_id: org.to_string(),
        team_id: team.map(str::to_string),
        owner_user_id: owner.id.clone(),
        creator_user_id: owner.id.clone(),
        name: String::new(),
        description: String::new(),
        current_version_id: String::new(),
        major_version: 0,
        deleted_at: None,
        created_at: now(),
        updated_at: now(),
    }
}

fn version_rec(name: &str, creator: &User) -> (SkillVersionRecord, Vec<SkillFileRecord>) {
    let vid = id("skv");
    let v = SkillVersionRecord {
        id: vid.clone(),
        skill_id: String::new(),
        major_version: 0,
        name: name.to_string(),
        description: format!("{name} description"),
        instructions: format!("Use {name}.\n\n# Steps\n1. ✓"),
        content_hash: "0".repeat(64),
        size: 3,
        file_count: 2,
        creator_user_id: creator.id.clone(),
        created_at: now(),
    };
    let file = |path: &str| SkillFileRecord {
        version_id: vid.clone(),
        path: path.to_string(),
        media_type: "text/markdown".into(),
        size: 1,
        blob_key: format!("skills/{}", id("skf")),
        sha256: "a".repeat(64),
    };
    (v, vec![file("scripts/z.py"), file("SKILL.md")])
}

fn reader(u: &User, teams: &[&str]) -> Reader {
    Reader { user_id: u.id.clone(), team_ids: teams.iter().map(|t| t.to_string()).collect(), organization_id: u.organization_id.clone() }
}

pub async fn versions_files_and_delete(b: &dyn Backend) {
    let s = b.open().await;
    let w = world(&*s).await;
    let (v, files) = version_rec("alpha", &w.user);
    let (sk, v1) = s.create_skill(&skill_rec(&w.org, &w.user, None), &v, &files).await.unwrap();
    assert_eq!((sk.major_version, v1.major_version, sk.current_version_id.as_str(), sk.name.as_str()), (1, 1, v.id.as_str(), "alpha"));
    assert_eq!(s.skill(&sk.id).await.unwrap(), Some(sk.clone()));
    assert_eq!(s.skill_version(&sk.id, &v1.id).await.unwrap(), Some(v1.clone()), "the version round-trips");
    let paths: Vec<String> = s.skill_files(&v1.id).await.unwrap().into_iter().map(|f| f.path).collect();
    assert_eq!(paths, vec!["SKILL.md", "scripts/z.py"], "files by path");

    let (v, files) = version_rec("alpha2", &w.user);
    let (sk2, v2) = s.add_skill_version(&sk.id, &v, &files).await.unwrap().expect("live skill");
    assert_eq!((sk2.major_version, v2.major_version, sk2.current_version_id.as_str(), sk2.name.as_str()), (2, 2, v.id.as_str(), "alpha2"));
    assert_eq!(s.skill(&sk.id).await.unwrap(), Some(sk2.clone()));
    assert!(s.skill_version(&sk.id, &v1.id).await.unwrap().is_some(), "old versions stay");
    assert!(s.skill_version("skill_other", &v1.id).await.unwrap().is_none(), "a version belongs to its skill");

    assert!(s.delete_skill(&sk.id, now()).await.unwrap());
    assert!(!s.delete_skill(&sk.id, now()).await.unwrap(), "deleted once");
    assert!(s.skill(&sk.id).await.unwrap().unwrap().deleted_at.is_some());
    let (v, files) = version_rec("late", &w.user);
    assert!(s.add_skill_version(&sk.id, &v, &files).await.unwrap().is_none(), "a deleted skill gets no version");
    assert!(s.add_skill_version("skill_missing", &v, &files).await.unwrap().is_none());
}

pub async fn listing_scopes_and_grants(b: &dyn Backend) {
    let s = b.open().await;
    let w = world(&*s).await;
    let other = user(&*s, &w.org).await;
    let t = team(&*s, &w.org, "T").await;
    let foreign_org = org(&*s, "Elsewhere").await;
    let stranger = user(&*s, &foreign_org).await;
    let mk = |owner: &User, team: Option<&str>, org: &str, name: &str| {
        let (v, f) = version_rec(name, owner);
        (skill_rec(org, owner, team), v, f)
    };
    let mut ids = std::collections::HashMap::new();
    for (key, (rec, v, f)) in [
        ("mine", mk(&w.user, None, &w.org, "mine")),
        ("theirs", mk(&other, None, &w.org, "theirs")),
        ("team", mk(&other, Some(&t.id), &w.org, "team")),
        ("foreign", mk(&stranger, None, &foreign_org, "foreign")),
    ] {
        let (sk, _) = s.create_skill(&rec, &v, &f).await.unwrap();
        ids.insert(key, sk.id);
    }
    let list = |scope: SkillScope, r: Reader, only: Option<Vec<String>>| {
        let s = s.clone();
        let org = r.organization_id.clone();
        async move {
            let f = SkillFilter { organization_id: org, reader: r, scope, ids: only, creator_user_id: None };
            let mut names: Vec<String> = s
                .list_skills(&f)
                .await
                .unwrap()
                .into_iter()
                .map(|(sk, v)| {
                    assert_eq!(sk.current_version_id, v.id);
                    v.name
                })
                .collect();
            names.sort();
            names
        }
    };
    assert_eq!(list(SkillScope::Personal, reader(&w.user, &[]), None).await, vec!["mine"]);
    assert_eq!(list(SkillScope::Team(t.id.clone()), reader(&w.user, &[&t.id]), None).await, vec!["team"]);
    assert_eq!(list(SkillScope::Readable, reader(&w.user, &[&t.id]), None).await, vec!["mine", "team"]);
    assert_eq!(list(SkillScope::Readable, reader(&w.user, &[]), None).await, vec!["mine"], "not a member: no team skills");
    assert_eq!(list(SkillScope::Readable, reader(&stranger, &[]), None).await, vec!["foreign"], "organizations never mix");
    assert_eq!(list(SkillScope::Readable, reader(&w.user, &[&t.id]), Some(vec![ids["team"].clone()])).await, vec!["team"]);

    // Grants: a person grant, then an organization grant, make `theirs` readable.
    let theirs = ids["theirs"].clone();
    s.change_skill_grants(&theirs, &[("person".into(), w.user.id.clone(), "viewer".into())], &[]).await.unwrap();
    assert_eq!(list(SkillScope::Personal, reader(&w.user, &[]), None).await, vec!["mine", "theirs"]);
    s.change_skill_grants(&theirs, &[("person".into(), w.user.id.clone(), "editor".into()), ("organization".into(), w.org.clone(), "viewer".into())], &[])
        .await
        .unwrap();
    let mut grants = s.skill_grants(&theirs).await.unwrap();
    grants.sort();
    assert_eq!(
        grants,
        vec![("organization".to_string(), w.org.clone(), "viewer".to_string()), ("person".to_string(), w.user.id.clone(), "editor".to_string())]
    );
    s.change_skill_grants(&theirs, &[], &[("person".into(), w.user.id.clone()), ("organization".into(), w.org.clone())]).await.unwrap();
    assert!(s.skill_grants(&theirs).await.unwrap().is_empty());
    assert_eq!(list(SkillScope::Personal, reader(&w.user, &[]), None).await, vec!["mine"]);

    // Deleted skills are not listed.
    s.delete_skill(&ids["mine"], now()).await.unwrap();
    assert!(list(SkillScope::Personal, reader(&w.user, &[]), None).await.is_empty());
}

/// Concurrent updates from two store instances never produce the same version number.
pub async fn concurrent_updates_make_distinct_versions(b: &dyn Backend) {
    let stores = two_stores(b).await;
    let w = world(&*stores[0]).await;
    let (v, f) = version_rec("race", &w.user);
    let (sk, _) = stores[0].create_skill(&skill_rec(&w.org, &w.user, None), &v, &f).await.unwrap();
    let results = join_all((0..30).map(|i| {
        let (s, id, user) = (stores[i % 2].clone(), sk.id.clone(), w.user.clone());
        async move {
            let (v, f) = version_rec(&format!("v{i}"), &user);
            s.add_skill_version(&id, &v, &f).await
        }
    }))
    .await;
    let versions: Vec<i64> = results.into_iter().filter_map(Result::ok).flatten().map(|(_, v)| v.major_version).collect();
    let distinct: BTreeSet<i64> = versions.iter().copied().collect();
    assert_eq!(distinct.len(), versions.len(), "no duplicate version: {versions:?}");
    assert!(!versions.is_empty());
    let current = stores[1].skill(&sk.id).await.unwrap().unwrap();
    assert_eq!(current.major_version, distinct.iter().max().copied().unwrap(), "the last committed version is current");
    assert_eq!(distinct.iter().max().copied(), Some(versions.len() as i64 + 1), "versions have no gap");
}
