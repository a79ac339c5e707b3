//! Email over the server's SMTP relay (`lettre`, rustls for STARTTLS and TLS).

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::deliver::{Decrypt, SendError, Settings, SmtpTls, reveal};
use crate::message::Message;

/// Sends one email message to all its recipients.
pub(crate) async fn send(
    settings: &Settings,
    message: &Message,
    secrets: &dyn Decrypt,
) -> Result<(), SendError> {
    let Message::Email {
        recipients,
        subject,
        body,
    } = message
    else {
        return Err(SendError::Invalid("not an email".into()));
    };
    let smtp = settings.smtp.as_ref().ok_or_else(|| {
        SendError::Invalid("no SMTP relay is configured ([notifications.smtp])".into())
    })?;
    let mut to: Vec<Mailbox> = Vec::new();
    for r in recipients {
        let plain = reveal(r, secrets)?;
        // A secure value may hold several addresses, comma-separated, as on Travis.
        for address in plain
            .expose()
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            match address.parse::<Mailbox>() {
                Ok(m) => to.push(m),
                Err(_) if r.is_secure() => {
                    return Err(SendError::Invalid(
                        "a secure recipient is not an email address".into(),
                    ));
                }
                Err(e) => {
                    return Err(SendError::Invalid(format!(
                        "`{address}` is not an email address: {e}"
                    )));
                }
            }
        }
    }
    if to.is_empty() {
        return Err(SendError::Invalid("the email has no recipient".into()));
    }
    let from: Mailbox = format!("Slipway CI <{}>", smtp.from).parse().map_err(|e| {
        SendError::Invalid(format!("the sender `{}` is not an address: {e}", smtp.from))
    })?;
    let mut mail = lettre::Message::builder().from(from).subject(subject);
    for m in to {
        mail = mail.to(m);
    }
    let mail = mail
        .header(ContentType::TEXT_PLAIN)
        .body(body.clone())
        .map_err(|e| SendError::Invalid(format!("the email cannot be built: {e}")))?;
    let builder = match smtp.tls {
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)
            .map_err(|e| SendError::Invalid(format!("SMTP relay {}: {e}", smtp.host)))?,
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)
            .map_err(|e| SendError::Invalid(format!("SMTP relay {}: {e}", smtp.host)))?,
    };
    let mut builder = builder
        .port(smtp.port)
        .timeout(Some(settings.timeout))
        .hello_name(ClientId::Domain(
            smtp.hello.clone().unwrap_or_else(|| "localhost".into()),
        ));
    if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.expose().clone()));
    }
    builder.build().send(mail).await.map(|_| ()).map_err(|e| {
        let text = format!("SMTP {}:{}: {e}", smtp.host, smtp.port);
        if e.is_permanent() {
            SendError::Invalid(text)
        } else {
            SendError::Failed(text)
        }
    })
}
