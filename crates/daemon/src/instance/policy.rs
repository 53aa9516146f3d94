//! What the guest's own actions lead to, by the instance's on_poweroff /
//! on_reboot / on_crash policies and what the daemon expects. Pure.

use ferrovirt_api::{EventKind, InstanceStatus, LifecycleAction};

/// How the actor reacts to a guest action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaction {
    /// Quit QEMU; record `exit` (or the exit already expected when `None`).
    Quit {
        exit: Option<(InstanceStatus, String)>,
    },
    /// Reset the machine and run it; report `event` with `detail`.
    ResetAndContinue {
        event: EventKind,
        detail: String,
    },
    /// Keep QEMU (paused when `pause`) and record this state.
    Record {
        pause: bool,
        status: InstanceStatus,
        reason: String,
        event: EventKind,
    },
    Nothing,
}

/// What the daemon expects to happen next.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// A stop was requested: any guest poweroff ends in shutoff.
    pub stopping: bool,
    /// A reboot was requested: the next guest poweroff becomes a reset.
    pub rebooting: bool,
}

/// The guest powered off (QEMU stays alive under `-no-shutdown`).
pub fn guest_poweroff(expect: &Expectation, on_poweroff: LifecycleAction) -> Reaction {
    if expect.stopping {
        return Reaction::Quit { exit: None };
    }
    if expect.rebooting {
        return Reaction::ResetAndContinue {
            event: EventKind::Rebooted,
            detail: "rebooted on request".into(),
        };
    }
    match on_poweroff {
        LifecycleAction::Destroy => Reaction::Quit {
            exit: Some((InstanceStatus::Shutoff, "the guest powered off".into())),
        },
        LifecycleAction::Restart => Reaction::ResetAndContinue {
            event: EventKind::Rebooted,
            detail: "the guest powered off; restarted by on_poweroff=restart".into(),
        },
        LifecycleAction::Preserve => Reaction::Record {
            pause: false,
            status: InstanceStatus::Paused,
            reason: "the guest powered off; kept by on_poweroff=preserve".into(),
            event: EventKind::Paused,
        },
    }
}

/// The guest rebooted itself (the machine has already reset).
pub fn guest_reboot(on_reboot: LifecycleAction) -> Reaction {
    match on_reboot {
        LifecycleAction::Restart => Reaction::Nothing,
        LifecycleAction::Destroy => Reaction::Quit {
            exit: Some((
                InstanceStatus::Shutoff,
                "the guest rebooted; stopped by on_reboot=destroy".into(),
            )),
        },
        LifecycleAction::Preserve => Reaction::Record {
            pause: true,
            status: InstanceStatus::Paused,
            reason: "the guest rebooted; kept by on_reboot=preserve".into(),
            event: EventKind::Paused,
        },
    }
}

/// The guest panicked (QEMU paused it under `-action panic=pause`).
pub fn guest_panic(on_crash: LifecycleAction) -> Reaction {
    match on_crash {
        LifecycleAction::Destroy => Reaction::Quit {
            exit: Some((InstanceStatus::Crashed, "the guest panicked".into())),
        },
        LifecycleAction::Restart => Reaction::ResetAndContinue {
            event: EventKind::Crashed,
            detail: "the guest panicked; restarting".into(),
        },
        LifecycleAction::Preserve => Reaction::Record {
            pause: false,
            status: InstanceStatus::Crashed,
            reason: "the guest panicked; kept by on_crash=preserve".into(),
            event: EventKind::Crashed,
        },
    }
}

/// QEMU died without being asked to: restart it?
pub fn restart_after_crash(on_crash: LifecycleAction) -> bool {
    on_crash == LifecycleAction::Restart
}

#[cfg(test)]
mod tests {
    use super::*;
    use LifecycleAction::*;

    #[test]
    fn poweroff_follows_the_request_then_the_policy() {
        let stopping = Expectation {
            stopping: true,
            rebooting: true,
        };
        for p in [Destroy, Restart, Preserve] {
            assert_eq!(guest_poweroff(&stopping, p), Reaction::Quit { exit: None });
        }
        let rebooting = Expectation {
            rebooting: true,
            ..Default::default()
        };
        assert!(matches!(
            guest_poweroff(&rebooting, Destroy),
            Reaction::ResetAndContinue {
                event: EventKind::Rebooted,
                ..
            }
        ));
        let none = Expectation::default();
        assert_eq!(
            guest_poweroff(&none, Destroy),
            Reaction::Quit {
                exit: Some((InstanceStatus::Shutoff, "the guest powered off".into()))
            }
        );
        assert!(matches!(
            guest_poweroff(&none, Restart),
            Reaction::ResetAndContinue { .. }
        ));
        assert!(matches!(
            guest_poweroff(&none, Preserve),
            Reaction::Record {
                status: InstanceStatus::Paused,
                pause: false,
                ..
            }
        ));
    }

    #[test]
    fn reboot_and_panic_policies() {
        assert_eq!(guest_reboot(Restart), Reaction::Nothing);
        assert!(matches!(
            guest_reboot(Destroy),
            Reaction::Quit {
                exit: Some((InstanceStatus::Shutoff, _))
            }
        ));
        assert!(matches!(
            guest_reboot(Preserve),
            Reaction::Record {
                pause: true,
                status: InstanceStatus::Paused,
                ..
            }
        ));
        assert!(matches!(
            guest_panic(Destroy),
            Reaction::Quit {
                exit: Some((InstanceStatus::Crashed, _))
            }
        ));
        assert!(matches!(
            guest_panic(Restart),
            Reaction::ResetAndContinue {
                event: EventKind::Crashed,
                ..
            }
        ));
        assert!(matches!(
            guest_panic(Preserve),
            Reaction::Record {
                status: InstanceStatus::Crashed,
                ..
            }
        ));
        assert!(restart_after_crash(Restart));
        assert!(!restart_after_crash(Destroy));
        assert!(!restart_after_crash(Preserve));
    }
}
