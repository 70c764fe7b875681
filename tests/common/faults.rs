//! Scripted emulator faults the tests share.

use std::time::Duration;

use b2_emulator::{Emulator, Fault, FaultAction};

/// A B2 JSON error answer, with the emulator's default message.
pub fn error(status: u16, code: &str) -> FaultAction {
    error_saying(status, code, None)
}

/// A B2 JSON error answer with `message` as its message (`None`: the emulator's default).
pub fn error_saying(status: u16, code: &str, message: Option<&str>) -> FaultAction {
    FaultAction::Error {
        status,
        code: code.to_string(),
        retry_after: None,
        message: message.map(str::to_string),
    }
}

pub fn inject(emu: &Emulator, call: &str, count: u32, action: FaultAction) {
    emu.inject(Fault {
        call: call.to_string(),
        count,
        action,
    });
}

/// Lets the next `passed` requests of `call` through, then holds the `held` after them at
/// the emulator until the test releases them (`Emulator::release`).
pub fn pass_then_hold(emu: &Emulator, call: &str, passed: u32, held: u32) {
    if passed > 0 {
        inject(emu, call, passed, FaultAction::Delay { millis: 0 });
    }
    inject(emu, call, held, FaultAction::Hold);
}

/// Waits until the emulator holds `n` requests; a request that never comes fails the test.
pub fn await_held(emu: &Emulator, n: usize) {
    assert!(
        emu.wait_held(n, Duration::from_secs(60)),
        "{n} request(s) never reached the emulator's hold ({} held)",
        emu.held()
    );
}

/// Runs `work` while another thread waits until the emulator holds a request (see
/// `pass_then_hold`), makes `change` (what a customer does meanwhile) and lets the
/// request go on: the change falls, for certain, while that request is in flight.
pub fn with_held_change<R>(
    emu: &Emulator,
    change: impl FnOnce() + Send,
    work: impl FnOnce() -> R,
) -> R {
    std::thread::scope(|scope| {
        let changer = scope.spawn(|| {
            await_held(emu, 1);
            change();
            assert_eq!(emu.release(1), 1, "the held request was let go");
        });
        let out = work();
        changer.join().expect("the change was made");
        out
    })
}
