//! `ArtifactStore`: artifacts, their versions, and legacy flow files.

use store::*;

use super::fixtures::*;
use super::Backend;

pub async fn versions_rename_password_delete(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let w = world(s).await;
    let sess = idle_session(s, &w.agent, &w.user).await;

    // The first version creates the artifact with the caller's id.
    let (a1, v1) = artifact_records(&sess, "report.csv");
    let (art, ver) = s.add_artifact_version(&a1, &v1).await.unwrap();
    assert_eq!(ver, ArtifactVersionRecord { artifact_id: a1.id.clone(), major_version: 1, ..v1.clone() }, "version 1 of the new artifact");
    assert_eq!(art, ArtifactRecord { current_version_id: v1.id.clone(), ..a1.clone() });
    assert_eq!(s.artifact(&a1.id).await.unwrap(), Some(art.clone()));

    // The same stored filename in the same session adds version 2 to the same artifact.
    let (a2, v2) = artifact_records(&sess, "report.csv");
    let (art2, ver2) = s.add_artifact_version(&a2, &v2).await.unwrap();
    assert_eq!(art2.id, a1.id, "the live artifact of that name gets the version");
    assert_eq!(ver2, ArtifactVersionRecord { artifact_id: a1.id.clone(), major_version: 2, ..v2.clone() });
    assert_eq!(art2.current_version_id, v2.id);
    assert!(s.artifact(&a2.id).await.unwrap().is_none(), "the unused new id was not written");
    assert_eq!(s.artifact(&a1.id).await.unwrap().unwrap().current_version_id, v2.id, "the newest version is current");
    assert_eq!(s.artifact_versions(&a1.id).await.unwrap(), vec![ver2.clone(), ver.clone()], "versions, newest first");

    // Another name, or the same name in another session: another artifact.
    let (a3, v3) = artifact_records(&sess, "summary.md");
    let (art3, ver3) = s.add_artifact_version(&a3, &v3).await.unwrap();
    assert_eq!((art3.id.as_str(), ver3.major_version), (a3.id.as_str(), 1));
    let other = idle_session(s, &w.agent, &w.user).await;
    let (a4, v4) = artifact_records(&other, "report.csv");
    let (art4, ver4) = s.add_artifact_version(&a4, &v4).await.unwrap();
    assert_eq!((art4.id.as_str(), ver4.major_version), (a4.id.as_str(), 1));

    // Rename and password.
    s.rename_artifact(&a1.id, Some("Q3 report")).await.unwrap();
    assert_eq!(s.artifact(&a1.id).await.unwrap().unwrap().custom_name.as_deref(), Some("Q3 report"));
    s.rename_artifact(&a1.id, None).await.unwrap();
    assert_eq!(s.artifact(&a1.id).await.unwrap().unwrap().custom_name, None, "renaming to None clears the name");
    s.set_artifact_password(&a1.id, "$argon2id$v=19$hash").await.unwrap();
    assert_eq!(s.artifact(&a1.id).await.unwrap().unwrap().password_hash.as_deref(), Some("$argon2id$v=19$hash"));
    assert_eq!(s.artifact(&a3.id).await.unwrap().unwrap().password_hash, None);

    // Delete: once; the record stays readable with deleted_at.
    let at = now();
    assert!(s.delete_artifact(&a1.id, at).await.unwrap());
    assert!(!s.delete_artifact(&a1.id, at + 1).await.unwrap(), "deleting twice reports false");
    assert!(!s.delete_artifact("art_missing", at).await.unwrap());
    assert_eq!(s.artifact(&a1.id).await.unwrap().unwrap().deleted_at, Some(at));

    // After deletion the name is free: a new artifact starts at version 1.
    let (a5, v5) = artifact_records(&sess, "report.csv");
    let (art5, ver5) = s.add_artifact_version(&a5, &v5).await.unwrap();
    assert_eq!((art5.id.as_str(), ver5.major_version), (a5.id.as_str(), 1), "a deleted artifact's name starts over");
    assert_eq!(s.artifact_versions(&a1.id).await.unwrap().len(), 2, "the deleted artifact keeps its versions");
}

pub async fn artifacts_of_agent_follow_readers(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let org = org(s, "Acme").await;
    let ada = user(s, &org).await;
    let bob = user(s, &org).await;
    let eve = user(s, &org).await;
    let agent = agent(s, &ada, None).await;
    let other_agent = super::fixtures::agent(s, &ada, None).await;

    let adas = idle_session(s, &agent, &ada).await;
    let bobs = idle_session(s, &agent, &bob).await;
    let elsewhere = idle_session(s, &other_agent, &ada).await;
    s.change_session_grants(&bobs.id, &[("person".into(), eve.id.clone(), "viewer".into())], &[]).await.unwrap();

    let (a1, v1) = artifact_records(&adas, "a.csv");
    s.add_artifact_version(&a1, &v1).await.unwrap();
    let (a1b, v1b) = artifact_records(&adas, "a.csv");
    let (_, latest) = s.add_artifact_version(&a1b, &v1b).await.unwrap();
    let (gone, gone_v) = artifact_records(&adas, "gone.csv");
    s.add_artifact_version(&gone, &gone_v).await.unwrap();
    assert!(s.delete_artifact(&gone.id, now()).await.unwrap());
    let (a2, v2) = artifact_records(&bobs, "b.csv");
    s.add_artifact_version(&a2, &v2).await.unwrap();
    let (a3, v3) = artifact_records(&elsewhere, "c.csv");
    s.add_artifact_version(&a3, &v3).await.unwrap();

    let listed = |u: &User| {
        let store = store.clone();
        let (agent_id, r) = (agent.id.clone(), reader(u, &[]));
        async move {
            let mut v: Vec<(String, String)> = readable_artifacts(&*store, &agent_id, &r).await.into_iter().map(|(a, v)| (a.id, v.id)).collect();
            v.sort();
            v
        }
    };
    assert_eq!(listed(&ada).await, vec![(a1.id.clone(), latest.id.clone())], "own live artifacts of this agent, with the current version");
    assert_eq!(listed(&bob).await, vec![(a2.id.clone(), v2.id.clone())]);
    assert_eq!(listed(&eve).await, vec![(a2.id.clone(), v2.id.clone())], "a grantee of the session sees its artifacts");
    s.change_session_grants(&bobs.id, &[], &[("person".into(), eve.id.clone())]).await.unwrap();
    assert!(listed(&eve).await.is_empty(), "and no longer once the grant is removed");
}

pub async fn flow_files_replace(b: &dyn Backend) {
    let store = b.open().await;
    let s = &*store;
    let f = |name: &str, key: &str| SessionFileRecord {
        session_id: String::new(),
        file_name: name.to_string(),
        media_type: "application/pdf".into(),
        size: 1024,
        blob_key: key.to_string(),
        created_at: now(),
    };
    let ns = format!("flows/{}", id("usr"));
    assert_eq!(s.upsert_flow_file(&ns, &f("in.pdf", "k1")).await.unwrap(), None, "a new file replaces nothing");
    assert_eq!(s.upsert_flow_file(&ns, &f("in.pdf", "k2")).await.unwrap().as_deref(), Some("k1"), "the replaced file's blob key is returned");
    let got = s.flow_file(&ns, "in.pdf").await.unwrap().expect("found");
    assert_eq!((got.session_id.as_str(), got.blob_key.as_str(), got.size), (ns.as_str(), "k2", 1024), "the newest file, owned by the namespace");
    assert!(s.flow_file(&ns, "other.pdf").await.unwrap().is_none());
    assert!(s.flow_file("flows/someone-else", "in.pdf").await.unwrap().is_none(), "namespaces are separate");
    assert_eq!(s.upsert_flow_file("flows/someone-else", &f("in.pdf", "k3")).await.unwrap(), None);
    assert_eq!(s.flow_file(&ns, "in.pdf").await.unwrap().unwrap().blob_key, "k2");
}
