//! Direct-assigned volume records under `/run/kata-containers/shared/direct-volumes`
//! (spec §6.4, real-peers §2), for `kata-runtime direct-volume`.
