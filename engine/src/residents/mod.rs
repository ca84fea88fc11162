//! Residents' personal data, protected and erasable (crypto-shredding, PIPL Art. 47).
//!
//! A resident's contact details (name, phone, ID number) never reach the event log in plain
//! text: intake seals them under a data key of that resident's own (XChaCha20-Poly1305,
//! 256-bit key, random 192-bit nonce, associated data binding the ciphertext to the key and
//! the case), and erasing the resident destroys the key — every event stays as it was, the
//! audit chain over the ciphertext stays intact, and nothing can read the contact again.
//!
//! - [`kek`]: the key-encryption key (KEK) from a file or the environment, checked and never
//!   shown; a key ring of the current KEK and the ones being rotated away from.
//! - [`sealing`]: the cipher: sealing and opening bytes, wrapping data keys.
//! - [`store`]: [`ResidentKeys`], the data keys in the NATS KV bucket `WANGGE_RESIDENT_KEYS`,
//!   wrapped by the KEK, named by a keyed hash; erasure, day keys of the rejected stream,
//!   rotation.
//! - [`mask`]: what a reader is shown (`138****1234`, `张*`).

pub mod kek;
pub mod mask;
pub mod sealing;
pub mod store;

pub use kek::{Kek, KekError, KeyRing};
pub use mask::{mask_id_number, mask_name, mask_phone, MaskedContact};
pub use store::{ContactOpener, Erasure, KeyStoreError, Opened, ResidentKeys, RewrapReport};
