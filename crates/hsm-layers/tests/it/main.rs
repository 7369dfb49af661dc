//! hsm-layers tests: the rules against a scripted provider (`flaky`), and the whole stack
//! against the three wire emulators behind fault injection (`emulators`).

mod emulators;
mod flaky;
mod layers;
