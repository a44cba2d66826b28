//! SIGTERM and SIGINT for processes that drive attempts: the first asks every driver for a
//! graceful stop, the second (a second Ctrl-C) for an immediate one.

use crate::executor::StopLevel;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// The signal that started a stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopSignal {
    Interrupt,
    Terminate,
}

impl StopSignal {
    /// The shell's convention for a process ended by this signal: 128 + its number.
    pub fn exit_code(self) -> u8 {
        match self {
            StopSignal::Interrupt => 130,
            StopSignal::Terminate => 143,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
        }
    }
}

/// Installs the handlers (inside a tokio runtime) and returns a receiver of the first stop
/// signal; `stop` gets `Graceful` on the first signal and `Now` on the second.
pub fn watch_stop_signals(
    stop: watch::Sender<StopLevel>,
) -> std::io::Result<watch::Receiver<Option<StopSignal>>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (first_tx, first_rx) = watch::channel(None);
    tokio::spawn(async move {
        let mut count = 0u32;
        loop {
            let which = tokio::select! {
                Some(()) = term.recv() => StopSignal::Terminate,
                Some(()) = int.recv() => StopSignal::Interrupt,
                else => return,
            };
            count += 1;
            if count == 1 {
                let _ = first_tx.send(Some(which));
                tracing::warn!(signal = which.name(), "stopping: no new tasks start; running tasks get SIGTERM (send the signal again to kill them at once)");
                let _ = stop.send(StopLevel::Graceful);
            } else {
                tracing::warn!(
                    signal = which.name(),
                    "second signal: killing running tasks now"
                );
                let _ = stop.send(StopLevel::Now);
            }
        }
    });
    Ok(first_rx)
}
