//! The store contract: behaviour every backend must have, written against the traits of
//! `store` only. A backend runner (`tests/sqlite_contract.rs`, later a PostgreSQL one)
//! implements [`Backend`] and expands [`contract_suite!`]; nothing here knows SQL.
//!
//! Each test gets a fresh, empty database. Race tests open two store instances on the
//! same database (as two processes or replicas would) and split their contenders
//! between them, so a backend that is only safe within one instance fails them.

pub mod agents;
pub mod artifacts;
pub mod fixtures;
pub mod flows;
pub mod idempotency;
pub mod listing;
pub mod mcp_servers;
pub mod races;
pub mod runs;
pub mod sessions;
pub mod skills;
pub mod tenancy;
pub mod triggers;

use std::sync::Arc;

use async_trait::async_trait;
use store::Store;

/// One empty database of the backend under test.
#[async_trait]
pub trait Backend: Send + Sync {
    /// A store on this backend's database (created and migrated on first use). Every
    /// call returns a NEW instance with its own connections (for SQLite: its own writer
    /// thread and readers), like another process or replica on the same database.
    async fn open(&self) -> Arc<dyn Store>;

    /// Called once at the end of a test that passed: release what `open` created.
    async fn finish(&self) {}

    /// False when the backend's server is not configured here (the test then returns
    /// at once; the test harness always configures every backend).
    fn enabled(&self) -> bool {
        true
    }
}

/// Expands to one `#[tokio::test]` per contract function, grouped in modules named
/// after the trait family (`tenancy::api_keys`, `races::claim_run_respects_slot_limits`…).
/// `$make` is evaluated once per test and must yield a fresh `impl Backend` (names in
/// it resolve from the runner's crate root).
///
/// Tests marked `ignore` document a contract the backend is known to break today (the
/// reason names the bug); run them with `cargo test -p store -- --ignored`.
#[macro_export]
macro_rules! contract_suite {
    ($make:expr) => {
        $crate::contract_suite!(@family $make, 2, tenancy: [
            organizations_users_teams, api_keys, mcp_sessions,
        ]);
        $crate::contract_suite!(@family $make, 2, agents: [
            create_get_and_conflict, tenant_listing_and_delete, update_checks_the_version, failed_update_writes_nothing,
        ]);
        $crate::contract_suite!(@family $make, 2, idempotency: [
            claim_complete_replay, stale_takeover_and_expiry, release_forgets_running_claims,
        ]);
        $crate::contract_suite!(@family $make, 2, sessions: [
            create_without_turn, create_with_turn, admission_rule_decides_inside_the_write, create_conflict_writes_nothing,
            start_turn_only_from_allowed_states,
            start_turn_dequeues_atomically, queue_respects_max_edit_delete, grants_and_readers, files_rename_cancel_queue_position,
            delete_idle_sessions_removes_every_trace,
            queue_places_follow_claim_order, text_with_nul_is_stored,
        ]);
        $crate::contract_suite!(@family $make, 2, runs: [
            claim_heartbeat_commit_finish, non_owner_writes_nothing, expiry_requeue_and_release, events_paging_and_purge,
            cancel_only_if_unleased, pause_and_resume, session_state_follows_only_the_current_run,
            dequeue_stays_in_the_runs_session, late_cancel_leaves_a_finished_run_alone, late_resume_leaves_a_cancelled_run_alone,
            refused_transition_writes_nothing, applied_transition_moves_session_and_counts,
        ]);
        $crate::contract_suite!(@family $make, 2, artifacts: [
            versions_rename_password_delete, artifacts_of_agent_follow_readers, flow_files_replace,
        ]);
        $crate::contract_suite!(@family $make, 4, flows: [
            versions_and_delete, claim_move_kill, concurrent_saves_make_distinct_versions, node_results_are_written_once,
        ]);
        $crate::contract_suite!(@family $make, 2, listing: [
            sessions_page_in_every_order, session_filters, own_team_scopes_own_sessions, rename_and_usage_move_sessions,
            artifacts_page_in_every_order, artifact_filters_and_readers,
        ]);
        $crate::contract_suite!(@family $make, 4, mcp_servers: [
            crud_scopes_and_optimistic_update, concurrent_registrations_have_one_winner,
        ]);
        $crate::contract_suite!(@family $make, 4, triggers: [
            crud_listing_and_due, deliveries_are_recorded_once_and_settle, concurrent_claims_have_one_winner,
        ]);
        $crate::contract_suite!(@family $make, 4, skills: [
            versions_files_and_delete, listing_scopes_and_grants, concurrent_updates_make_distinct_versions,
        ]);
        $crate::contract_suite!(@family $make, 4, races: [
            claim_run_respects_slot_limits, claim_and_cancel_are_exclusive, start_turn_has_one_winner,
            dequeue_delivers_a_queued_message_once, enqueue_message_never_exceeds_max, add_artifact_version_has_no_gap,
            claim_idempotency_has_one_new, update_agent_has_one_winner, ensure_user_creates_once,
            message_ordinals_and_event_seqs_are_unique, admission_of_new_sessions_respects_limits,
            admission_reports_distinct_queue_places,
            admission_on_idle_sessions_respects_limits,
            claims_and_admissions_respect_limits,
        ]);
    };
    (@family $make:expr, $threads:tt, $family:ident: [$($(#[$meta:meta])* $name:ident),* $(,)?]) => {
        mod $family {
            #[allow(unused_imports)]
            use super::*;
            $(
                $(#[$meta])*
                #[tokio::test(flavor = "multi_thread", worker_threads = $threads)]
                async fn $name() {
                    let backend = $make;
                    if !$crate::contract::Backend::enabled(&backend) {
                        return;
                    }
                    $crate::contract::$family::$name(&backend).await;
                    $crate::contract::Backend::finish(&backend).await;
                }
            )*
        }
    };
}
