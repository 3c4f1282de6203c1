//! The guest debug console behind `kata-runtime exec` (spec §5, real-peers §4): agent URL
//! parsing, the vsock and hybrid-vsock dialers, the raw local terminal, the escape
//! sequence, and the interactive and one-shot copy loops.

pub mod dial;
pub mod escape;
pub mod oneshot;
pub mod session;
pub mod terminal;
pub mod url;
