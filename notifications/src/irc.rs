//! IRC: a plain client that registers (`PASS`, `NICK`, `USER`), optionally identifies with
//! NickServ and joins, sends each line as `PRIVMSG` or `NOTICE`, and leaves. A `PING` after the
//! lines makes the server answer every error about them before `QUIT`, so a message the server
//! refused (no such channel, cannot send) is a failure, not a silent loss.

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use crate::deliver::{Decrypt, SendError, Settings, checked_address, reveal};
use crate::message::Message;

/// Where a channel target points.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Target {
    host: String,
    port: u16,
    tls: bool,
    channel: String,
    key: Option<String>,
}

/// Reads `[irc://|ircs://]host[:port]#channel[,key]`.
pub(crate) fn parse_target(text: &str) -> Option<Target> {
    let (tls, rest) = if let Some(r) = text.strip_prefix("ircs://") {
        (true, r)
    } else {
        (false, text.strip_prefix("irc://").unwrap_or(text))
    };
    let (server, channel) = rest.split_once('#')?;
    let (channel, key) = match channel.split_once(',') {
        Some((c, k)) => (c, Some(k.to_owned())),
        None => (channel, None),
    };
    let (host, port) = match server.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (server, if tls { 6697 } else { 6667 }),
    };
    let bad = |s: &str| {
        s.is_empty()
            || s.chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == ',')
    };
    if bad(host) || bad(channel) {
        return None;
    }
    Some(Target {
        host: host.to_owned(),
        port,
        tls,
        channel: format!("#{channel}"),
        key,
    })
}

/// Sends one IRC message.
pub(crate) async fn send(
    settings: &Settings,
    message: &Message,
    secrets: &dyn Decrypt,
) -> Result<(), SendError> {
    let Message::Irc {
        channel,
        lines,
        notice,
        join,
        nick,
        password,
        nickserv_password,
        channel_key,
    } = message
    else {
        return Err(SendError::Invalid("not an IRC message".into()));
    };
    let target = parse_target(reveal(channel, secrets)?.expose()).ok_or_else(|| {
        SendError::Invalid("an IRC channel is `[irc://|ircs://]host[:port]#channel`".into())
    })?;
    let reveal_opt = |t: &Option<slipway_pipelines::plan::Text>| {
        t.as_ref().map(|t| reveal(t, secrets)).transpose()
    };
    let session = Session {
        nick: match reveal_opt(nick)? {
            Some(n) => n.into_exposed(),
            None => settings.irc_nick.clone(),
        },
        password: reveal_opt(password)?.map(|s| s.into_exposed()),
        nickserv: reveal_opt(nickserv_password)?.map(|s| s.into_exposed()),
        key: target
            .key
            .clone()
            .or(reveal_opt(channel_key)?.map(|s| s.into_exposed())),
        command: if *notice { "NOTICE" } else { "PRIVMSG" },
        join: *join,
        channel: target.channel.clone(),
    };
    let addr = checked_address(settings, &target.host, target.port).await?;
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| SendError::Failed(format!("irc {}:{}: {e}", target.host, target.port)))?;
    let result = if target.tls {
        let stream = tls(&target.host, tcp).await?;
        session.run(stream, lines).await
    } else {
        session.run(tcp, lines).await
    };
    result.map_err(|e| match e {
        SendError::Failed(m) => SendError::Failed(format!("irc {}: {m}", target.host)),
        SendError::Invalid(m) => SendError::Invalid(format!("irc {}: {m}", target.host)),
    })
}

async fn tls(
    host: &str,
    tcp: tokio::net::TcpStream,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, SendError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| SendError::Failed(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| SendError::Invalid(format!("{host}: {e}")))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| SendError::Failed(format!("TLS: {e}")))
}

/// One connection's settings, secrets already decrypted (they live only for this call).
struct Session {
    nick: String,
    password: Option<String>,
    nickserv: Option<String>,
    key: Option<String>,
    command: &'static str,
    join: bool,
    channel: String,
}

/// A line's command and parameters, prefix dropped (`:server 001 nick :Welcome` → `001`).
fn command_of(line: &str) -> (&str, &str) {
    let line = match line.strip_prefix(':') {
        Some(rest) => rest.split_once(' ').map_or("", |(_, r)| r),
        None => line,
    };
    line.split_once(' ').unwrap_or((line, ""))
}

/// Numerics that mean a message or join was refused.
fn is_error_numeric(cmd: &str) -> bool {
    cmd.len() == 3
        && matches!(cmd.as_bytes()[0], b'4' | b'5')
        && cmd.bytes().all(|b| b.is_ascii_digit())
}

/// Text safe to put on one IRC line (no CR, LF or NUL).
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| {
            if matches!(c, '\r' | '\n' | '\0') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

impl Session {
    async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        self,
        stream: S,
        lines: &[String],
    ) -> Result<(), SendError> {
        let (read, mut write) = tokio::io::split(stream);
        let mut read = BufReader::new(read).lines();
        let mut out = String::new();
        if let Some(p) = &self.password {
            out.push_str(&format!("PASS {}\r\n", one_line(p)));
        }
        let mut nick = one_line(&self.nick);
        out.push_str(&format!("NICK {nick}\r\nUSER {nick} 0 * :Slipway CI\r\n"));
        send_raw(&mut write, &out).await?;
        // Registration: wait for the welcome, answering PINGs and finding a free nick.
        loop {
            let line = next(&mut read).await?;
            let (cmd, args) = command_of(&line);
            match cmd {
                "PING" => send_raw(&mut write, &format!("PONG {args}\r\n")).await?,
                "001" => break,
                "433" if nick.len() < self.nick.len() + 3 => {
                    nick.push('_');
                    send_raw(&mut write, &format!("NICK {nick}\r\n")).await?;
                }
                "ERROR" => return Err(SendError::Failed(format!("the server closed: {args}"))),
                c if is_error_numeric(c) && c != "433" => {
                    return Err(SendError::Invalid(format!(
                        "registration refused: {c} {args}"
                    )));
                }
                "433" => return Err(SendError::Failed("every nick tried is in use".into())),
                _ => {}
            }
        }
        let mut out = String::new();
        if let Some(p) = &self.nickserv {
            out.push_str(&format!("PRIVMSG NickServ :IDENTIFY {}\r\n", one_line(p)));
        }
        if self.join {
            match &self.key {
                Some(k) => out.push_str(&format!("JOIN {} {}\r\n", self.channel, one_line(k))),
                None => out.push_str(&format!("JOIN {}\r\n", self.channel)),
            }
        }
        for line in lines {
            out.push_str(&format!(
                "{} {} :{}\r\n",
                self.command,
                self.channel,
                one_line(line)
            ));
        }
        out.push_str("PING :slipway-sent\r\n");
        send_raw(&mut write, &out).await?;
        let mut refused = None;
        loop {
            let line = next(&mut read).await?;
            let (cmd, args) = command_of(&line);
            match cmd {
                "PING" => send_raw(&mut write, &format!("PONG {args}\r\n")).await?,
                "PONG" if args.contains("slipway-sent") => break,
                "ERROR" => return Err(SendError::Failed(format!("the server closed: {args}"))),
                c if is_error_numeric(c) => refused = Some(format!("{c} {args}")),
                _ => {}
            }
        }
        let bye = if self.join {
            format!("PART {}\r\nQUIT :done\r\n", self.channel)
        } else {
            "QUIT :done\r\n".to_owned()
        };
        send_raw(&mut write, &bye).await?;
        // The server closes after QUIT; what it says until then does not change the outcome.
        while let Ok(Some(_)) = read.next_line().await {}
        match refused {
            Some(why) => Err(SendError::Failed(format!("the server refused: {why}"))),
            None => Ok(()),
        }
    }
}

async fn send_raw<W: AsyncWrite + Unpin>(w: &mut W, text: &str) -> Result<(), SendError> {
    w.write_all(text.as_bytes())
        .await
        .map_err(|e| SendError::Failed(format!("write: {e}")))
}

async fn next<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut tokio::io::Lines<R>,
) -> Result<String, SendError> {
    r.next_line()
        .await
        .map_err(|e| SendError::Failed(format!("read: {e}")))?
        .ok_or_else(|| SendError::Failed("the server closed the connection".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("irc.example.net#openra"),
            Some(Target {
                host: "irc.example.net".into(),
                port: 6667,
                tls: false,
                channel: "#openra".into(),
                key: None
            })
        );
        let t = parse_target("ircs://irc.example.org:7000#ops,s3cret").unwrap();
        assert_eq!(
            (t.port, t.tls, t.key.as_deref()),
            (7000, true, Some("s3cret"))
        );
        assert!(parse_target("irc.example.org").is_none());
        assert!(parse_target("irc.example.org:x#c").is_none());
        assert!(parse_target("irc.example.org#c d").is_none());
    }

    #[test]
    fn commands_and_numerics() {
        assert_eq!(command_of(":srv 001 me :Welcome"), ("001", "me :Welcome"));
        assert_eq!(command_of("PING :abc"), ("PING", ":abc"));
        assert!(is_error_numeric("404"));
        assert!(!is_error_numeric("366"));
        assert_eq!(one_line("a\r\nb"), "a  b");
    }
}
