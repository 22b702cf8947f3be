//! The signature algorithms of JWTs on `ring`, installed as `jsonwebtoken`'s crypto provider.
//!
//! `jsonwebtoken` ships two providers (aws-lc-rs, RustCrypto); both would add a second cryptography
//! stack beside the `ring` that rustls already brings. A provider is a pair of factories, so `ring`
//! fills it in a page.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature;
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{self as sig, KeyPair};
use ring::{digest, hmac};

/// Installs the provider for the process; a no-op when one is already installed.
pub fn install() {
    // Only this crate uses jsonwebtoken, so an installed provider is this one.
    let _ = CryptoProvider::install_default(&RING_PROVIDER);
}

static RING_PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: rsa_components_of_private_key,
        rsa_pub_components_from_public_key: rsa_components_of_public_key,
        ec_pub_components_from_private_key: ec_components_of_private_key,
        ed_pub_components_from_private_key: ed_component_of_private_key,
        compute_digest,
    },
};

/// The `ring` algorithm behind each JWS algorithm.
enum Scheme {
    Hmac(hmac::Algorithm),
    Rsa(&'static sig::RsaParameters, &'static dyn sig::RsaEncoding),
    Ecdsa(
        &'static sig::EcdsaVerificationAlgorithm,
        &'static sig::EcdsaSigningAlgorithm,
    ),
    Ed25519,
}

fn scheme(algorithm: Algorithm) -> Option<Scheme> {
    Some(match algorithm {
        Algorithm::HS256 => Scheme::Hmac(hmac::HMAC_SHA256),
        Algorithm::HS384 => Scheme::Hmac(hmac::HMAC_SHA384),
        Algorithm::HS512 => Scheme::Hmac(hmac::HMAC_SHA512),
        Algorithm::RS256 => Scheme::Rsa(&sig::RSA_PKCS1_2048_8192_SHA256, &sig::RSA_PKCS1_SHA256),
        Algorithm::RS384 => Scheme::Rsa(&sig::RSA_PKCS1_2048_8192_SHA384, &sig::RSA_PKCS1_SHA384),
        Algorithm::RS512 => Scheme::Rsa(&sig::RSA_PKCS1_2048_8192_SHA512, &sig::RSA_PKCS1_SHA512),
        Algorithm::PS256 => Scheme::Rsa(&sig::RSA_PSS_2048_8192_SHA256, &sig::RSA_PSS_SHA256),
        Algorithm::PS384 => Scheme::Rsa(&sig::RSA_PSS_2048_8192_SHA384, &sig::RSA_PSS_SHA384),
        Algorithm::PS512 => Scheme::Rsa(&sig::RSA_PSS_2048_8192_SHA512, &sig::RSA_PSS_SHA512),
        Algorithm::ES256 => Scheme::Ecdsa(
            &sig::ECDSA_P256_SHA256_FIXED,
            &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
        ),
        Algorithm::ES384 => Scheme::Ecdsa(
            &sig::ECDSA_P384_SHA384_FIXED,
            &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
        ),
        Algorithm::EdDSA => Scheme::Ed25519,
        // A newer algorithm of jsonwebtoken's that this provider does not implement.
        _ => return None,
    })
}

/// Any failure of `ring` as a signature error: the cause is never shown to a client.
fn bad<E>(_: E) -> signature::Error {
    signature::Error::new()
}

/// Checks signatures of one algorithm with one key.
struct Verifier {
    algorithm: Algorithm,
    key: DecodingKey,
}

fn new_verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    // The key's family must be the algorithm's: this is what stops an HS256 token from being checked
    // with an RSA public key's bytes as its HMAC secret.
    if key.family() != algorithm.family() {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(Verifier {
        algorithm: *algorithm,
        key: key.clone(),
    }))
}

impl signature::Verifier<Vec<u8>> for Verifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        match (
            scheme(self.algorithm).ok_or_else(signature::Error::new)?,
            self.key.kind(),
        ) {
            (Scheme::Hmac(alg), DecodingKeyKind::SecretOrDer(secret)) => {
                // Constant-time comparison of the tags.
                hmac::verify(&hmac::Key::new(alg, secret), msg, signature).map_err(bad)
            }
            (Scheme::Rsa(params, _), DecodingKeyKind::SecretOrDer(der)) => {
                sig::UnparsedPublicKey::new(params, der)
                    .verify(msg, signature)
                    .map_err(bad)
            }
            (Scheme::Rsa(params, _), DecodingKeyKind::RsaModulusExponent { n, e }) => {
                sig::RsaPublicKeyComponents { n, e }
                    .verify(params, msg, signature)
                    .map_err(bad)
            }
            (Scheme::Ecdsa(verify, _), DecodingKeyKind::SecretOrDer(point)) => {
                sig::UnparsedPublicKey::new(verify, point)
                    .verify(msg, signature)
                    .map_err(bad)
            }
            (Scheme::Ed25519, DecodingKeyKind::SecretOrDer(point)) => {
                sig::UnparsedPublicKey::new(&sig::ED25519, point)
                    .verify(msg, signature)
                    .map_err(bad)
            }
            _ => Err(signature::Error::new()),
        }
    }
}

impl JwtVerifier for Verifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// Signs with one algorithm and one key: the gateway only verifies, but a whole provider makes
/// tokens for the tests the same way an issuer would.
struct Signer {
    algorithm: Algorithm,
    key: Vec<u8>,
}

fn new_signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    if key.family() != algorithm.family() {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(Signer {
        algorithm: *algorithm,
        key: key.as_bytes().to_vec(),
    }))
}

impl signature::Signer<Vec<u8>> for Signer {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let rng = SystemRandom::new();
        match scheme(self.algorithm).ok_or_else(signature::Error::new)? {
            Scheme::Hmac(alg) => Ok(hmac::sign(&hmac::Key::new(alg, &self.key), msg)
                .as_ref()
                .to_vec()),
            Scheme::Rsa(_, encoding) => {
                let pair = rsa_key_pair(&self.key).map_err(bad)?;
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(encoding, &rng, msg, &mut out).map_err(bad)?;
                Ok(out)
            }
            Scheme::Ecdsa(_, signing) => {
                let pair = sig::EcdsaKeyPair::from_pkcs8(signing, &self.key, &rng).map_err(bad)?;
                Ok(pair.sign(&rng, msg).map_err(bad)?.as_ref().to_vec())
            }
            Scheme::Ed25519 => {
                let pair =
                    sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&self.key).map_err(bad)?;
                Ok(pair.sign(msg).as_ref().to_vec())
            }
        }
    }
}

impl JwtSigner for Signer {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// An RSA private key in PKCS#8 or PKCS#1 DER.
fn rsa_key_pair(der: &[u8]) -> Result<sig::RsaKeyPair, ring::error::KeyRejected> {
    sig::RsaKeyPair::from_pkcs8(der).or_else(|_| sig::RsaKeyPair::from_der(der))
}

fn rsa_components_of_private_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let pair = rsa_key_pair(der).map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?;
    let components = sig::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
    Ok((components.n, components.e))
}

fn rsa_components_of_public_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Error> {
    // ring has no parser for a bare RSAPublicKey; its two INTEGERs are read here.
    let (n, e) = rsa_public_key_integers(der)
        .ok_or_else(|| ErrorKind::InvalidRsaKey("not an RSAPublicKey".into()))?;
    Ok((n.to_vec(), e.to_vec()))
}

/// The modulus and exponent of a DER `RSAPublicKey ::= SEQUENCE { n INTEGER, e INTEGER }`, leading
/// zero bytes removed.
fn rsa_public_key_integers(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (tag, body, rest) = der_element(der)?;
    if tag != 0x30 || !rest.is_empty() {
        return None;
    }
    let (tag_n, n, rest) = der_element(body)?;
    let (tag_e, e, rest) = der_element(rest)?;
    if tag_n != 0x02 || tag_e != 0x02 || !rest.is_empty() {
        return None;
    }
    Some((without_leading_zeros(n), without_leading_zeros(e)))
}

fn without_leading_zeros(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    &v[start..]
}

/// One DER element: its tag, its content and what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[count..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

fn ec_components_of_private_key(
    der: &[u8],
    algorithm: Algorithm,
) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>), Error> {
    let (signing, curve, size) = match scheme(algorithm) {
        Some(Scheme::Ecdsa(_, signing)) if algorithm == Algorithm::ES256 => {
            (signing, EllipticCurve::P256, 32)
        }
        Some(Scheme::Ecdsa(_, signing)) => (signing, EllipticCurve::P384, 48),
        _ => return Err(ErrorKind::InvalidEcdsaKey.into()),
    };
    let pair = sig::EcdsaKeyPair::from_pkcs8(signing, der, &SystemRandom::new())
        .map_err(|_| ErrorKind::InvalidEcdsaKey)?;
    match pair.public_key().as_ref().split_first() {
        Some((4, point)) if point.len() == 2 * size => {
            let (x, y) = point.split_at(size);
            Ok((curve, x.to_vec(), y.to_vec()))
        }
        _ => Err(ErrorKind::InvalidEcdsaKey.into()),
    }
}

fn ed_component_of_private_key(der: &[u8], curve: &EllipticCurve) -> Result<Vec<u8>, Error> {
    if *curve != EllipticCurve::Ed25519 {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let pair = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
        .map_err(|_| ErrorKind::InvalidEddsaKey)?;
    Ok(pair.public_key().as_ref().to_vec())
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>, Error> {
    let algorithm = match hash {
        ThumbprintHash::SHA256 => &digest::SHA256,
        ThumbprintHash::SHA384 => &digest::SHA384,
        ThumbprintHash::SHA512 => &digest::SHA512,
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    Ok(digest::digest(algorithm, data).as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_integers_of_an_rsa_public_key() {
        // SEQUENCE { INTEGER 0x00c5, INTEGER 0x010001 }
        let der = [
            0x30, 0x09, 0x02, 0x02, 0x00, 0xc5, 0x02, 0x03, 0x01, 0x00, 0x01,
        ];
        let (n, e) = rsa_public_key_integers(&der).unwrap();
        assert_eq!(n, [0xc5]);
        assert_eq!(e, [0x01, 0x00, 0x01]);
        assert!(rsa_public_key_integers(&der[..8]).is_none());
        assert!(rsa_public_key_integers(&[0x30, 0x81]).is_none());
    }
}
