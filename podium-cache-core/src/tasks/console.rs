//! Where the task runner writes: the process's stdout and stderr, or two buffers
//! ([`crate::tasks::Tasks::run_captured`]).

use std::io::Write;
use std::sync::Arc;

use parking_lot::Mutex;

/// One output stream.
#[derive(Clone)]
enum Sink {
    Stdout,
    Stderr,
    Buffer(Arc<Mutex<Vec<u8>>>),
}

impl Sink {
    fn write(&self, text: &str) {
        // A closed pipe (`… | head`) must not panic the runner: what cannot be written is lost.
        match self {
            Self::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
            }
            Self::Stderr => {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
            }
            Self::Buffer(buffer) => buffer.lock().extend_from_slice(text.as_bytes()),
        }
    }

    fn take(&self) -> String {
        match self {
            Self::Buffer(buffer) => {
                String::from_utf8_lossy(&std::mem::take(&mut *buffer.lock())).into_owned()
            }
            Self::Stdout | Self::Stderr => String::new(),
        }
    }
}

/// The runner's stdout (results: tables, JSON, secrets) and stderr (hints, errors, progress).
#[derive(Clone)]
pub(crate) struct Console {
    out: Sink,
    err: Sink,
}

impl Console {
    /// The process's own streams.
    pub(crate) fn process() -> Self {
        Self {
            out: Sink::Stdout,
            err: Sink::Stderr,
        }
    }

    /// Two in-memory buffers, read back with [`Console::take`].
    pub(crate) fn captured() -> Self {
        Self {
            out: Sink::Buffer(Arc::default()),
            err: Sink::Buffer(Arc::default()),
        }
    }

    /// Whether stderr is a terminal a progress bar can be drawn on.
    pub(crate) fn stderr_is_terminal(&self) -> bool {
        use std::io::IsTerminal;
        matches!(self.err, Sink::Stderr) && std::io::stderr().is_terminal()
    }

    /// Writes `text` to stdout as it is.
    pub(crate) fn out(&self, text: &str) {
        self.out.write(text);
    }

    /// Writes `text` and a newline to stdout.
    pub(crate) fn outln(&self, text: impl std::fmt::Display) {
        self.out.write(&format!("{text}\n"));
    }

    /// Writes `text` and a newline to stderr.
    pub(crate) fn errln(&self, text: impl std::fmt::Display) {
        self.err.write(&format!("{text}\n"));
    }

    /// Shows clap's help or error: on the process's streams as clap prints it (in colour on a
    /// terminal), else as plain text (help on stdout, errors on stderr).
    pub(crate) fn clap_message(&self, err: &clap::Error) {
        if matches!(self.out, Sink::Stdout) {
            let _ = err.print();
        } else if err.use_stderr() {
            self.err.write(&err.render().to_string());
        } else {
            self.out.write(&err.render().to_string());
        }
    }

    /// What was written to the buffers so far, `(stdout, stderr)` (empty for the process's
    /// own streams).
    pub(crate) fn take(&self) -> (String, String) {
        (self.out.take(), self.err.take())
    }
}
