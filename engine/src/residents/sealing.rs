//! The cipher: XChaCha20-Poly1305 with a random 192-bit nonce per message (random nonces
//! of this size never need coordination between engine instances), the associated data
//! naming what the ciphertext belongs to.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305, XNonce};

use super::kek::KEY_BYTES;

/// Bytes of a nonce.
pub const NONCE_BYTES: usize = 24;

/// Fresh random bytes from the operating system. The OS's generator failing is not a state
/// the engine can go on from (it could not make a key or a nonce safely).
fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random generator works");
    bytes
}

pub fn random_key() -> [u8; KEY_BYTES] {
    random()
}

/// A sealed message: its nonce and the ciphertext with its tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub nonce: [u8; NONCE_BYTES],
    pub ciphertext: Vec<u8>,
}

/// Seals `plaintext` under `key`, bound to `aad`.
pub fn seal(key: &[u8; KEY_BYTES], aad: &[u8], plaintext: &[u8]) -> Sealed {
    let nonce = random::<NONCE_BYTES>();
    let cipher = XChaCha20Poly1305::new(&Key::from(*key));
    let ciphertext = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("XChaCha20-Poly1305 seals any message below 256 GiB");
    Sealed { nonce, ciphertext }
}

/// Opens what [`seal`] sealed with the same key and associated data; `None` when the key,
/// the associated data or a byte differs.
pub fn open(key: &[u8; KEY_BYTES], aad: &[u8], nonce: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
    let nonce: [u8; NONCE_BYTES] = nonce.try_into().ok()?;
    XChaCha20Poly1305::new(&Key::from(*key))
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_open_only_with_the_same_key_and_associated_data() {
        let key = random_key();
        let sealed = seal(&key, b"rk-1|case-1", b"13812341234");
        assert_ne!(sealed.ciphertext, b"13812341234");
        assert_eq!(
            open(&key, b"rk-1|case-1", &sealed.nonce, &sealed.ciphertext).as_deref(),
            Some(&b"13812341234"[..])
        );
        assert_eq!(
            open(&key, b"rk-1|case-2", &sealed.nonce, &sealed.ciphertext),
            None
        );
        assert_eq!(
            open(
                &random_key(),
                b"rk-1|case-1",
                &sealed.nonce,
                &sealed.ciphertext
            ),
            None
        );
    }
}
