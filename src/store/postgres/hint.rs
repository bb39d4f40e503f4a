//! Connection failures whose fix readbot knows get a sentence saying it,
//! in front of the driver's error (kept as the cause): a server certificate
//! no trusted authority signed (a private CA: `store.ca_file`), and a server
//! that takes connections only over TLS (`sslmode=disable` in the URL).

use crate::store::{BoxError, StoreError};
use std::error::Error;

/// A connection failure with the fix readbot knows.
#[derive(Debug, thiserror::Error)]
enum Hint {
    /// rustls found no trusted authority for the server's certificate.
    #[error(
        "the server's TLS certificate is not trusted: no known certificate authority signed it; \
         if a private CA did (as for many managed databases), set READBOT_STORE_CA_FILE \
         (store.ca_file) to that CA's PEM file"
    )]
    UntrustedCertificate(#[source] BoxError),
    /// `pg_hba.conf` has no rule for a connection without TLS.
    #[error(
        "the server refuses connections without TLS; use sslmode=require in READBOT_STORE_URL \
         (sslmode=disable only for a server on a trusted network that allows it)"
    )]
    TlsRequired(#[source] BoxError),
}

/// [`StoreError::Unreachable`] for `target`, with a [`Hint`] in front of
/// `e` when one applies.
pub(super) fn unreachable(target: &str, e: impl Into<BoxError>) -> StoreError {
    let e: BoxError = e.into();
    let source: BoxError = if chain(&*e).any(untrusted_certificate) {
        Box::new(Hint::UntrustedCertificate(e))
    } else if chain(&*e).any(tls_required) {
        Box::new(Hint::TlsRequired(e))
    } else {
        e
    };
    StoreError::Unreachable {
        target: target.to_owned(),
        source,
    }
}

/// `e` and its causes.
fn chain<'a>(e: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(e), |e: &&'a (dyn Error + 'static)| (*e).source())
}

/// rustls's `UnknownIssuer`, also inside an `io::Error` (whose `source`
/// skips the error it wraps).
fn untrusted_certificate(e: &(dyn Error + 'static)) -> bool {
    let rustls = e.downcast_ref::<rustls::Error>().or_else(|| {
        e.downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    });
    matches!(
        rustls,
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer
        ))
    )
}

/// The server's "no pg_hba.conf entry … no encryption" (English messages;
/// on a server set to another language the refusal is shown as it is).
fn tls_required(e: &(dyn Error + 'static)) -> bool {
    e.downcast_ref::<tokio_postgres::error::DbError>()
        .is_some_and(|db| {
            *db.code() == tokio_postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                && db.message().contains("no encryption")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_issuer_inside_io_errors_gets_the_ca_file_hint() {
        let rustls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls);
        let text = unreachable("db:5432 (database d)", io).with_causes();
        assert!(text.contains("not trusted"), "{text}");
        assert!(text.contains("READBOT_STORE_CA_FILE"), "{text}");
        assert!(text.ends_with("UnknownIssuer"), "the cause is kept: {text}");
    }

    #[test]
    fn other_failures_are_shown_as_they_are() {
        let expired = rustls::Error::InvalidCertificate(rustls::CertificateError::Expired);
        for e in [
            Box::new(expired) as BoxError,
            Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        ] {
            let shown = e.to_string();
            let text = unreachable("db:5432 (database d)", e).with_causes();
            assert_eq!(
                text,
                format!("cannot reach PostgreSQL at db:5432 (database d): {shown}")
            );
        }
    }
}
