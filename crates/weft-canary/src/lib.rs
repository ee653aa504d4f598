//! Canary releases as Flagger runs them, as pure logic: what a Canary's
//! analysis settings mean ([`settings`]), the status Flagger records and
//! its `Promoted` condition ([`status`]), how the built-in and custom
//! metrics are judged ([`judge`]), weft's comparison with the primary
//! ([`compare`]), and one tick of the state machine
//! ([`machine`]). Nothing here touches a socket or a clock: the
//! controller in the control plane feeds each tick what it observed (the
//! target's revision, readiness, the routes it holds, the webhooks' and
//! metrics' answers) and carries out what the tick decided.

pub mod compare;
pub mod judge;
pub mod machine;
pub mod settings;
pub mod status;
pub mod template;
