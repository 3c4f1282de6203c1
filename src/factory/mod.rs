//! The VM factory behind `kata-runtime factory init|destroy|status` (spec §7): the VM cache
//! gRPC server and client, the QEMU launcher with its QMP client, and the VM template.

pub mod client;
pub mod qemu;
pub mod qmp;
pub mod server;
pub mod template;
