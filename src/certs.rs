//! Certificate generation for `flinkgate certs` and the embedded default:
//! a CA plus a serving certificate it signs, for the webhook's names.

use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CertError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("'{0}' is not a valid DNS name for a certificate")]
    BadName(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// PEM-encoded CA and serving certificate with their keys.
pub struct Bundle {
    pub ca_cert: String,
    pub ca_key: String,
    pub cert: String,
    pub key: String,
}

/// A fresh CA and a serving certificate for `dns_names` and `ips`, valid for
/// `days` days.
pub fn generate(dns_names: &[String], ips: &[IpAddr], days: u32) -> Result<Bundle, CertError> {
    let ca_params = ca_params(days);
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let params = serving_params(dns_names, ips, days)?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &Issuer::from_params(&ca_params, &ca_key))?;
    Ok(Bundle {
        ca_cert: ca_cert.pem(),
        ca_key: ca_key.serialize_pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A new serving certificate from the CA key `generate` made, so a rotation
/// needs no new caBundle.
pub fn issue(
    ca_key_pem: &str,
    dns_names: &[String],
    ips: &[IpAddr],
    days: u32,
) -> Result<(String, String), CertError> {
    let ca_key = KeyPair::from_pem(ca_key_pem)?;
    // The issuer name and key identify the CA; both are what `generate` used.
    let issuer = Issuer::new(ca_params(days), ca_key);
    let key = KeyPair::generate()?;
    let cert = serving_params(dns_names, ips, days)?.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A client certificate (`clientAuth`) from the CA key `generate` made:
/// what kube-scheduler presents to `/scheduler/*` under
/// `--extender-client-ca`.
pub fn issue_client(
    ca_key_pem: &str,
    common_name: &str,
    days: u32,
) -> Result<(String, String), CertError> {
    let ca_key = KeyPair::from_pem(ca_key_pem)?;
    let issuer = Issuer::new(ca_params(days), ca_key);
    let (from, until) = validity(days);
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = from.into();
    params.not_after = until.into();
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn validity(days: u32) -> (std::time::SystemTime, std::time::SystemTime) {
    let now = time_now();
    (
        now,
        now + std::time::Duration::from_secs(u64::from(days) * 86_400),
    )
}

fn ca_params(days: u32) -> CertificateParams {
    let (from, until) = validity(days);
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, "flinkgate CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = from.into();
    p.not_after = until.into();
    p
}

fn serving_params(
    dns_names: &[String],
    ips: &[IpAddr],
    days: u32,
) -> Result<CertificateParams, CertError> {
    let (from, until) = validity(days);
    let mut params = CertificateParams::default();
    let cn = dns_names
        .first()
        .cloned()
        .unwrap_or_else(|| "flinkgate".into());
    params.distinguished_name.push(DnType::CommonName, cn);
    for n in dns_names {
        if !is_dns_name(n) {
            return Err(CertError::BadName(n.clone()));
        }
        let name = n
            .clone()
            .try_into()
            .map_err(|_| CertError::BadName(n.clone()))?;
        params.subject_alt_names.push(SanType::DnsName(name));
    }
    for ip in ips {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = from.into();
    params.not_after = until.into();
    Ok(params)
}

/// RFC 1123 host names, with an optional leading `*.` wildcard.
fn is_dns_name(name: &str) -> bool {
    crate::address::is_host_name(name.strip_prefix("*.").unwrap_or(name))
}

fn time_now() -> std::time::SystemTime {
    // Backdate a little so a slightly slow clock elsewhere still accepts it.
    std::time::SystemTime::now() - std::time::Duration::from_secs(300)
}

/// Writes `ca.crt`, `ca.key`, `tls.crt` and `tls.key` (the names a
/// kubernetes.io/tls Secret uses) into `dir`; keys are readable by the owner only.
pub fn write(bundle: &Bundle, dir: &Path) -> Result<(), CertError> {
    std::fs::create_dir_all(dir).map_err(|source| CertError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    for (name, content, private) in [
        ("ca.crt", &bundle.ca_cert, false),
        ("ca.key", &bundle.ca_key, true),
        ("tls.crt", &bundle.cert, false),
        ("tls.key", &bundle.key, true),
    ] {
        write_pem(dir, name, content, private)?;
    }
    Ok(())
}

/// Issues a client certificate named `name` from `bundle`'s CA and writes
/// `NAME.crt` and `NAME.key` (owner-only) into `dir`.
pub fn write_client(bundle: &Bundle, name: &str, days: u32, dir: &Path) -> Result<(), CertError> {
    if !is_dns_name(name) || name.starts_with("*.") {
        return Err(CertError::BadName(name.to_string()));
    }
    let (cert, key) = issue_client(&bundle.ca_key, name, days)?;
    write_pem(dir, &format!("{name}.crt"), &cert, false)?;
    write_pem(dir, &format!("{name}.key"), &key, true)
}

/// Writes one PEM file into `dir` (owner-only when `private`).
fn write_pem(dir: &Path, name: &str, content: &str, private: bool) -> Result<(), CertError> {
    let path = dir.join(name);
    write_file(&path, content.as_bytes(), private).map_err(|source| CertError::Write {
        path: path.display().to_string(),
        source,
    })
}

fn write_file(path: &Path, content: &[u8], private: bool) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // Write beside and rename, so a server polling the files never reads half of one.
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(&tmp)?;
    f.write_all(content)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_a_ca_signed_serving_certificate() {
        let b = generate(
            &["flinkgate.flinkgate-system.svc".into()],
            &["127.0.0.1".parse().unwrap()],
            30,
        )
        .unwrap();
        assert!(b.ca_cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(b.key.contains("PRIVATE KEY"));
        // The serving pair loads into rustls and matches.
        crate::tls::certified_key(b.cert.as_bytes(), b.key.as_bytes()).unwrap();
        // A rotated certificate from the same CA loads too, and differs.
        let (cert, key) = issue(&b.ca_key, &["x.example".into()], &[], 1).unwrap();
        assert_ne!(cert, b.cert);
        crate::tls::certified_key(cert.as_bytes(), key.as_bytes()).unwrap();
    }

    #[test]
    fn rejects_bad_dns_names() {
        assert!(matches!(
            generate(&["bad name!".into()], &[], 1),
            Err(CertError::BadName(_))
        ));
    }
}
