//! TLS material, loaded once at startup: the certificate chain and key, the client CA, the protocol
//! versions and cipher suites, turned into one rustls `ServerConfig` that every connection shares.
//!
//! The Python side reads the files (and decrypts a password-protected key); this module parses the
//! PEM, checks that key and certificate belong together and maps uvicorn's OpenSSL-shaped values.
//! Errors name the command-line option they come from.

use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use tokio_rustls::rustls;
use tokio_rustls::rustls::crypto::ring as provider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig, SupportedCipherSuite};

/// TLS protocol version numbers as they appear on the wire (and in the ASGI `tls` extension).
pub const TLS12: u16 = 0x0303;
pub const TLS13: u16 = 0x0304;

/// `(OpenSSL name, IANA name, IANA id)` of every suite the ring provider implements. TLS 1.3
/// suites have the same name in both.
const CIPHER_NAMES: &[(&str, &str, u16)] = &[
    ("TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384", 0x1302),
    ("TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256", 0x1301),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_CHACHA20_POLY1305_SHA256",
        0x1303,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        0xc02c,
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        0xc02b,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        0xcca9,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        0xc030,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        0xc02f,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        0xcca8,
    ),
];

/// What the network side needs of the TLS configuration.
#[derive(Debug)]
pub struct TlsSettings {
    pub server_config: Arc<ServerConfig>,
    /// PEM of the server's own (leaf) certificate, for the `tls` scope extension.
    pub server_cert_pem: String,
}

impl TlsSettings {
    /// The same settings, offering these ALPN protocols (most preferred first).
    pub fn offering(&self, alpn: Vec<Vec<u8>>) -> Arc<TlsSettings> {
        let mut server_config = (*self.server_config).clone();
        server_config.alpn_protocols = alpn;
        Arc::new(TlsSettings {
            server_config: Arc::new(server_config),
            server_cert_pem: self.server_cert_pem.clone(),
        })
    }
}

/// `turboasgi._core.TlsConfig`: built once per process from the `--ssl-*` options.
#[pyclass(module = "turboasgi._core", frozen)]
pub struct TlsConfig {
    pub settings: Arc<TlsSettings>,
}

fn option_error(option: &str, message: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("{option}: {message}"))
}

fn parse_cert_chain(pem: &[u8], option: &str) -> PyResult<Vec<CertificateDer<'static>>> {
    let mut chain = Vec::new();
    for cert in CertificateDer::pem_slice_iter(pem) {
        chain.push(cert.map_err(|e| option_error(option, format!("invalid PEM ({e})")))?);
    }
    if chain.is_empty() {
        return Err(option_error(option, "no PEM certificate found"));
    }
    Ok(chain)
}

fn parse_key(pem: &[u8]) -> PyResult<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => option_error(
            "--ssl-keyfile",
            "no PEM private key found (PKCS#1, PKCS#8 or SEC1 expected)",
        ),
        other => option_error("--ssl-keyfile", format!("invalid PEM ({other})")),
    })
}

/// The suites named by an OpenSSL-style list (`:`, `,` or space separated; OpenSSL or IANA names).
/// Like OpenSSL's `set_ciphers`, a list of TLS 1.2 names leaves the TLS 1.3 suites enabled.
pub fn select_cipher_suites(spec: &str) -> Result<Vec<SupportedCipherSuite>, String> {
    let all = provider::ALL_CIPHER_SUITES;
    if spec.trim().eq_ignore_ascii_case("DEFAULT") {
        // OpenSSL's name for its default list: here, every suite rustls offers
        return Ok(all.to_vec());
    }
    let mut ids = Vec::new();
    for token in spec
        .split([':', ',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let upper = token.to_ascii_uppercase();
        let Some(&(_, _, id)) = CIPHER_NAMES
            .iter()
            .find(|(openssl, iana, _)| upper == *openssl || upper == *iana)
        else {
            let supported: Vec<&str> = CIPHER_NAMES.iter().map(|(name, _, _)| *name).collect();
            return Err(format!(
                "unsupported cipher {token:?}; supported (OpenSSL or IANA names): {}",
                supported.join(", ")
            ));
        };
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if ids.is_empty() {
        return Err("no cipher named".into());
    }
    let named_tls13 = all
        .iter()
        .any(|s| s.tls13().is_some() && ids.contains(&u16::from(s.suite())));
    let mut suites: Vec<SupportedCipherSuite> = ids
        .iter()
        .filter_map(|id| all.iter().find(|s| u16::from(s.suite()) == *id).copied())
        .collect();
    if !named_tls13 {
        suites.extend(all.iter().filter(|s| s.tls13().is_some()).copied());
    }
    Ok(suites)
}

fn protocol_versions(versions: &[u16]) -> PyResult<Vec<&'static rustls::SupportedProtocolVersion>> {
    let mut out = Vec::new();
    for v in versions {
        match *v {
            TLS12 => out.push(&rustls::version::TLS12),
            TLS13 => out.push(&rustls::version::TLS13),
            other => {
                return Err(option_error(
                    "--ssl-version",
                    format!("unsupported protocol version 0x{other:04x}"),
                ))
            }
        }
    }
    if out.is_empty() {
        return Err(option_error("--ssl-version", "no protocol version"));
    }
    Ok(out)
}

fn client_verifier(
    cert_reqs: u8,
    ca_certs: Option<&[u8]>,
) -> PyResult<Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>> {
    if cert_reqs == 0 {
        return Ok(None);
    }
    if cert_reqs > 2 {
        return Err(option_error(
            "--ssl-cert-reqs",
            format!("{cert_reqs} is not 0 (none), 1 (optional) or 2 (required)"),
        ));
    }
    let Some(pem) = ca_certs else {
        return Err(option_error(
            "--ssl-cert-reqs",
            "client certificates are requested but no --ssl-ca-certs is given to verify them",
        ));
    };
    let mut roots = RootCertStore::empty();
    for cert in parse_cert_chain(pem, "--ssl-ca-certs")? {
        roots
            .add(cert)
            .map_err(|e| option_error("--ssl-ca-certs", format!("invalid CA certificate ({e})")))?;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(provider::default_provider()),
    );
    let builder = if cert_reqs == 1 {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    builder
        .build()
        .map(Some)
        .map_err(|e| option_error("--ssl-ca-certs", e))
}

#[pymethods]
impl TlsConfig {
    /// `certfile`/`keyfile`/`ca_certs`: PEM contents (the key unencrypted); `versions`: wire version
    /// numbers to enable; `cert_reqs`: 0 none, 1 optional, 2 required; `ciphers`: OpenSSL-style list.
    #[new]
    #[pyo3(signature = (*, certfile, keyfile, versions, cert_reqs = 0, ca_certs = None, ciphers = None))]
    fn new(
        certfile: &[u8],
        keyfile: &[u8],
        versions: Vec<u16>,
        cert_reqs: u8,
        ca_certs: Option<&[u8]>,
        ciphers: Option<&str>,
    ) -> PyResult<Self> {
        let chain = parse_cert_chain(certfile, "--ssl-certfile")?;
        let key = parse_key(keyfile)?;
        let versions = protocol_versions(&versions)?;
        let mut crypto = provider::default_provider();
        if let Some(spec) = ciphers {
            crypto.cipher_suites =
                select_cipher_suites(spec).map_err(|e| option_error("--ssl-ciphers", e))?;
        }
        let builder = ServerConfig::builder_with_provider(Arc::new(crypto))
            .with_protocol_versions(&versions)
            .map_err(|e| {
                option_error(
                    "--ssl-ciphers",
                    format!("no cipher left for the chosen --ssl-version ({e})"),
                )
            })?;
        let builder = match client_verifier(cert_reqs, ca_certs)? {
            Some(verifier) => builder.with_client_cert_verifier(verifier),
            None => builder.with_no_client_auth(),
        };
        let server_cert_pem = pem_certificate(&chain[0]);
        let mut config = builder.with_single_cert(chain, key).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => option_error(
                "--ssl-keyfile",
                "the private key does not match the certificate of --ssl-certfile",
            ),
            other => option_error("--ssl-keyfile", format!("unusable private key ({other})")),
        })?;
        // Until `CoreConfig` says which protocols `--http` allows (`TlsSettings::offering`).
        config.alpn_protocols = vec![crate::config::ALPN_HTTP11.to_vec()];
        Ok(TlsConfig {
            settings: Arc::new(TlsSettings {
                server_config: Arc::new(config),
                server_cert_pem,
            }),
        })
    }
}

/// A DER certificate as PEM text (64-character base64 lines).
pub fn pem_certificate(der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        let sextets = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (i, s) in sextets.iter().enumerate() {
            b64.push(if i <= chunk.len() {
                ALPHABET[*s as usize]
            } else {
                b'='
            });
        }
    }
    let mut pem = String::with_capacity(b64.len() + b64.len() / 64 + 60);
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in b64.chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_padding_matches_rfc4648_vectors() {
        let body = |der: &[u8]| {
            pem_certificate(der)
                .lines()
                .nth(1)
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(body(b"f"), "Zg==");
        assert_eq!(body(b"fo"), "Zm8=");
        assert_eq!(body(b"foo"), "Zm9v");
        assert_eq!(body(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn cipher_names_map_and_unknown_ones_are_refused() {
        let suites = select_cipher_suites("ECDHE-RSA-AES128-GCM-SHA256").unwrap();
        let ids: Vec<u16> = suites.iter().map(|s| u16::from(s.suite())).collect();
        assert_eq!(ids[0], 0xc02f);
        assert!(ids.contains(&0x1301), "TLS 1.3 suites stay on: {ids:x?}");
        let only13 = select_cipher_suites("TLS_AES_128_GCM_SHA256").unwrap();
        assert_eq!(only13.len(), 1);
        let iana = select_cipher_suites("tls_ecdhe_rsa_with_aes_256_gcm_sha384").unwrap();
        assert_eq!(u16::from(iana[0].suite()), 0xc030);
        assert_eq!(select_cipher_suites("DEFAULT").unwrap().len(), 9);
        let err = select_cipher_suites("HIGH:!aNULL").unwrap_err();
        assert!(err.contains("\"HIGH\"") && err.contains("ECDHE-RSA-AES128-GCM-SHA256"));
    }

    #[test]
    fn every_named_suite_exists_in_the_provider() {
        for (_, _, id) in CIPHER_NAMES {
            assert!(provider::ALL_CIPHER_SUITES
                .iter()
                .any(|s| u16::from(s.suite()) == *id));
        }
    }
}
