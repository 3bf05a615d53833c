//! The lab state machine: states move only forward, and a lab that failed or stopped can be
//! started again (a new run of the same lab, with the same workspace).

use std::fmt;

/// Where a lab is in its lifecycle. The order of the variants is the order of progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabState {
    /// Asked for; nothing done yet.
    Pending,
    /// A node (this one, for the local backend) has taken the lab.
    Placed,
    /// The lab's environment is being provisioned (or found ready).
    Provisioning,
    /// The sandbox is up; the lab's server is being waited on.
    Starting,
    /// The lab's server answers.
    Running,
    /// The lab is being stopped.
    Stopping,
    /// The lab stopped; nothing of it runs.
    Stopped,
    /// The lab failed; the reason says why and what to do next.
    Failed {
        /// Why, in words for the person who started the lab.
        reason: String,
    },
}

/// A transition the state machine refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a lab cannot go from {from} to {to}")]
pub struct BackwardsTransition {
    /// The state the lab was in.
    pub from: &'static str,
    /// The state asked for.
    pub to: &'static str,
}

impl LabState {
    /// The state's name as stored and shown (`running`, `failed`…).
    pub fn name(&self) -> &'static str {
        match self {
            LabState::Pending => "pending",
            LabState::Placed => "placed",
            LabState::Provisioning => "provisioning",
            LabState::Starting => "starting",
            LabState::Running => "running",
            LabState::Stopping => "stopping",
            LabState::Stopped => "stopped",
            LabState::Failed { .. } => "failed",
        }
    }

    fn rank(&self) -> u8 {
        match self {
            LabState::Pending => 0,
            LabState::Placed => 1,
            LabState::Provisioning => 2,
            LabState::Starting => 3,
            LabState::Running => 4,
            LabState::Stopping => 5,
            LabState::Stopped | LabState::Failed { .. } => 6,
        }
    }

    /// Whether nothing of the lab runs any more in this state.
    pub fn is_final(&self) -> bool {
        self.rank() == 6
    }

    /// Whether a new run may begin from this state (a start of a lab that stopped or failed).
    pub fn can_restart(&self) -> bool {
        self.is_final()
    }

    /// Moves to `next`, refusing any step backwards. Any live state may fail or stop; a final
    /// state only leaves through [`LabState::restart`].
    pub fn advance(&mut self, next: LabState) -> Result<(), BackwardsTransition> {
        let ok = !self.is_final()
            && (next.rank() > self.rank()
                || matches!(next, LabState::Failed { .. } | LabState::Stopped));
        if !ok {
            return Err(BackwardsTransition {
                from: self.name(),
                to: next.name(),
            });
        }
        *self = next;
        Ok(())
    }

    /// Begins a new run of a lab that stopped or failed: back to pending.
    pub fn restart(&mut self) -> Result<(), BackwardsTransition> {
        if !self.can_restart() {
            return Err(BackwardsTransition {
                from: self.name(),
                to: "pending",
            });
        }
        *self = LabState::Pending;
        Ok(())
    }
}

impl fmt::Display for LabState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabState::Failed { reason } => write!(f, "failed: {reason}"),
            other => f.write_str(other.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> LabState {
        LabState::Failed {
            reason: "sandbox unavailable".into(),
        }
    }

    #[test]
    fn the_happy_path_moves_forward() {
        let mut s = LabState::Pending;
        for next in [
            LabState::Placed,
            LabState::Provisioning,
            LabState::Starting,
            LabState::Running,
            LabState::Stopping,
            LabState::Stopped,
        ] {
            s.advance(next.clone()).expect("forward");
            assert_eq!(s, next);
        }
    }

    #[test]
    fn progress_never_goes_backwards() {
        let mut s = LabState::Running;
        assert!(s.advance(LabState::Starting).is_err());
        assert!(s.advance(LabState::Running).is_err());
        assert_eq!(s, LabState::Running);
        let mut done = LabState::Stopped;
        assert!(done.advance(LabState::Running).is_err());
        assert!(done.advance(failed()).is_err());
    }

    #[test]
    fn any_live_state_can_fail_or_stop_and_a_failed_lab_restarts() {
        for start in [
            LabState::Pending,
            LabState::Provisioning,
            LabState::Starting,
        ] {
            let mut s = start.clone();
            s.advance(failed()).expect("fails");
            assert_eq!(s.to_string(), "failed: sandbox unavailable");
            s.restart().expect("restartable");
            assert_eq!(s, LabState::Pending);
            let mut t = start;
            t.advance(LabState::Stopped).expect("stoppable");
        }
        assert!(LabState::Running.clone().restart().is_err());
    }
}
