//! The session state machine (API.md §6.1): one enum, one transition function. Both
//! handlers and workers go through `transition`; no other change may be observed.

pub use store::{RunState, Transition};
pub use wire::sessions::SessionState;

/// What happened to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEvent {
    /// A user message starts a run (S1 with input, S7, L1, S16, queue drain);
    /// `slot_free` says whether the run can start now or must wait in the run queue.
    MessageAccepted {
        slot_free: bool,
    },
    /// A worker took the run from the run queue.
    SlotFreed,
    RunCompleted,
    RunFailed,
    ApprovalNeeded,
    /// S11 resolved the last open ask.
    ApprovalsResolved,
    /// S9.
    Cancel,
}

/// The only legal transitions. `Err` carries the state that refused the event.
pub fn transition(from: SessionState, event: SessionEvent) -> Result<SessionState, SessionState> {
    use SessionEvent as E;
    use SessionState as S;
    let to = match (from, event) {
        (s, E::MessageAccepted { slot_free }) if s.accepts_messages() => {
            if slot_free {
                S::Processing
            } else {
                S::Queued
            }
        }
        (S::Queued, E::SlotFreed) => S::Processing,
        (S::Processing, E::RunCompleted) => S::Completed,
        (S::Processing, E::RunFailed) => S::Failed,
        (S::Processing, E::ApprovalNeeded) => S::ApprovalRequired,
        (S::ApprovalRequired, E::ApprovalsResolved) => S::Processing,
        (S::Queued | S::Processing | S::ApprovalRequired, E::Cancel) => S::Cancelled,
        (S::Idle | S::Completed | S::Failed | S::Cancelled, E::Cancel) => from,
        // A run interrupted while queued (e.g. attempts exhausted before a slot) fails.
        (S::Queued, E::RunFailed) => S::Failed,
        _ => return Err(from),
    };
    Ok(to)
}

/// The run's side of `transition`: a run passes through the session states of its
/// lifetime, so the same table decides. `Err` carries the state that refused.
pub fn run_transition(from: RunState, event: SessionEvent) -> Result<Transition, RunState> {
    let to = transition(from.session_state(), event).map_err(|_| from)?;
    match RunState::of_session(to) {
        Some(to) if to != from => Ok(Transition { from, to }),
        _ => Err(from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SessionEvent as E;
    use SessionState as S;

    #[test]
    fn table_of_section_6_1() {
        assert_eq!(transition(S::Idle, E::MessageAccepted { slot_free: true }), Ok(S::Processing));
        assert_eq!(transition(S::Completed, E::MessageAccepted { slot_free: false }), Ok(S::Queued));
        assert_eq!(transition(S::Processing, E::MessageAccepted { slot_free: true }), Err(S::Processing));
        assert_eq!(transition(S::Queued, E::MessageAccepted { slot_free: true }), Err(S::Queued));
        assert_eq!(transition(S::Queued, E::SlotFreed), Ok(S::Processing));
        assert_eq!(transition(S::Processing, E::RunCompleted), Ok(S::Completed));
        assert_eq!(transition(S::Processing, E::ApprovalNeeded), Ok(S::ApprovalRequired));
        assert_eq!(transition(S::ApprovalRequired, E::ApprovalsResolved), Ok(S::Processing));
        assert_eq!(transition(S::ApprovalRequired, E::Cancel), Ok(S::Cancelled));
        assert_eq!(transition(S::Completed, E::Cancel), Ok(S::Completed));
        assert_eq!(transition(S::Completed, E::RunCompleted), Err(S::Completed));
        assert_eq!(transition(S::Idle, E::SlotFreed), Err(S::Idle));
        for s in S::ALL {
            assert_eq!(S::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn runs_follow_the_same_table() {
        use RunState as R;
        assert_eq!(run_transition(R::Queued, E::SlotFreed), Ok(Transition { from: R::Queued, to: R::Processing }));
        assert_eq!(run_transition(R::Processing, E::RunCompleted), Ok(Transition { from: R::Processing, to: R::Completed }));
        assert_eq!(run_transition(R::ApprovalRequired, E::Cancel), Ok(Transition { from: R::ApprovalRequired, to: R::Cancelled }));
        // A finished run is not cancelled again, nor completed twice.
        assert_eq!(run_transition(R::Completed, E::Cancel), Err(R::Completed));
        assert_eq!(run_transition(R::Completed, E::RunCompleted), Err(R::Completed));
        assert_eq!(run_transition(R::Cancelled, E::ApprovalsResolved), Err(R::Cancelled));
        for r in R::ALL {
            assert_eq!(R::parse(r.as_str()), Some(r));
        }
    }

    #[test]
    fn legacy_mapping() {
        assert_eq!(S::ApprovalRequired.legacy(), "ASYNC_PROCESSING");
        assert_eq!(S::Idle.legacy(), "COMPLETED");
        assert_eq!(S::Cancelled.legacy(), "FAILED");
    }
}
