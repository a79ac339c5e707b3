//! The notification senders against real components: the SMTP sink (aiosmtpd), the IRC server
//! (ngircd), and request-checking stand-ins for Slack and a webhook receiver.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::sinks::*;
use slipway_notifications::{
    BuildFacts, Decrypt, Deliverer, Message, NoSecrets, SendError, Sender, Settings, SigningKey,
    Smtp, SmtpTls, compose,
};
use slipway_pipelines::plan::{
    Channel, Decision, EventType, Notification, Outcome, Text, Triggers,
};
use slipway_secrets::Secret;

fn facts(marker: &str) -> BuildFacts {
    BuildFacts {
        id: "17".into(),
        number: "17".into(),
        url: Some("https://ci.example.org/builds/17".into()),
        repo: "acme/app".into(),
        event: EventType::Push,
        branch: "main".into(),
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        message: format!("Fix the thing {marker}"),
        author_name: "Ada".into(),
        author_email: "ada@example.org".into(),
        committer_name: "Bob".into(),
        committer_email: "bob@example.org".into(),
        state: Some(Outcome::Passed),
        previous: Some(Outcome::Failed),
        duration: Some(65),
        ..BuildFacts::default()
    }
}

fn notification(channel: Channel, template: &[&str]) -> Notification {
    Notification {
        on: Triggers::defaults(channel.name()),
        channel,
        template: template.iter().map(|t| t.to_string()).collect(),
        decision: Decision {
            included: true,
            reason: String::new(),
        },
    }
}

/// Loopback allowed, as `[notifications] allow = ["127.0.0.1"]` does.
fn settings(slack_url: &str, signing: Option<Arc<SigningKey>>) -> Settings {
    let smtp = std::env::var("SLIPWAY_TEST_SMTP").ok().map(|addr| {
        let (host, port) = addr.rsplit_once(':').unwrap();
        Smtp {
            host: host.into(),
            port: port.parse().unwrap(),
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: "ci@slipway.test".into(),
            hello: None,
        }
    });
    Settings {
        smtp,
        slack_url: Some(slack_url.into()),
        irc_nick: "slipway-test".into(),
        signing,
        reach: Arc::new(|_, ip| (!ip.is_loopback()).then(|| "not loopback".to_owned())),
        timeout: Duration::from_secs(20),
    }
}

/// Decrypts the one value `enc` to `plain`, as a repository's key would.
struct OneSecret(&'static str, &'static str);

impl Decrypt for OneSecret {
    fn decrypt(&self, encrypted: &str) -> Result<Secret<String>, String> {
        (encrypted == self.0)
            .then(|| Secret::new(self.1.to_owned()))
            .ok_or_else(|| "wrong key".into())
    }
}

fn send(settings: Settings, message: &Message, secrets: &dyn Decrypt) -> Result<(), SendError> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let deliverer = Deliverer::new(settings).unwrap();
    rt.block_on(deliverer.send(message, secrets))
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

#[test]
fn email_lands_in_the_smtp_sink_with_every_recipient() {
    if service("SLIPWAY_TEST_SMTP").is_none() || service("SLIPWAY_TEST_MAILDIR").is_none() {
        return;
    }
    let marker = unique("mail");
    // Default recipients: the commit's author and committer; a secure one is decrypted.
    let n = notification(Channel::Email { recipients: vec![] }, &[]);
    let [message] = &compose(&n, &facts(&marker))[..] else {
        panic!()
    };
    send(settings("", None), message, &NoSecrets).unwrap();
    let mails = wait_mails(&marker, 1, 20);
    let mail = &mails[0];
    assert!(
        mail.contains("To: ada@example.org, bob@example.org"),
        "{mail}"
    );
    assert!(
        mail.contains("Subject: Fixed: acme/app#17 (main - 0123456)"),
        "{mail}"
    );
    assert!(mail.contains("The build was fixed."), "{mail}");

    let marker = unique("secure-mail");
    let n = notification(
        Channel::Email {
            recipients: vec![Text::Secure("ENC".into())],
        },
        &[],
    );
    let message = &compose(&n, &facts(&marker))[0];
    send(
        settings("", None),
        message,
        &OneSecret("ENC", "ops@example.org, lead@example.org"),
    )
    .unwrap();
    let mail = &wait_mails(&marker, 1, 20)[0];
    assert!(
        mail.lines()
            .any(|l| l.trim_end() == "To: ops@example.org, lead@example.org"),
        "{mail}"
    );
    // Without the key nothing is sent, and the error names no secret.
    let err = send(settings("", None), message, &NoSecrets).unwrap_err();
    assert!(!err.retryable(), "{err}");
}

#[test]
fn irc_lines_reach_a_joined_channel() {
    let Some(addr) = service("SLIPWAY_TEST_IRC") else {
        return;
    };
    let channel = format!("#{}", unique("c").replace('-', ""));
    let watcher = IrcWatcher::join(&addr, &unique("w").replace('-', "")[..12], &channel);
    let target = format!("{addr}{channel}");
    let n = notification(Channel::irc(vec![Text::Plain(target)]), &[]);
    let message = &compose(&n, &facts("irc"))[0];
    send(settings("", None), message, &NoSecrets).unwrap();
    let said = watcher.wait_said(3, 20);
    assert_eq!(
        said[0],
        "PRIVMSG acme/app#17 (main - 0123456 : Ada): The build was fixed."
    );
    assert_eq!(
        said[2],
        "PRIVMSG Build details : https://ci.example.org/builds/17"
    );

    // A template, as notices, without joining.
    let mut n = n;
    n.template = vec!["%{repository_slug} %{result} in %{duration}".into()];
    if let Channel::Irc {
        use_notice,
        skip_join,
        ..
    } = &mut n.channel
    {
        *use_notice = true;
        *skip_join = true;
    }
    send(
        settings("", None),
        &compose(&n, &facts("irc"))[0],
        &NoSecrets,
    )
    .unwrap();
    let said = watcher.wait_said(4, 20);
    assert_eq!(said[3], "NOTICE acme/app passed in 1 min 5 sec");
}

#[test]
fn irc_to_a_refused_server_or_channel_fails() {
    let Some(addr) = service("SLIPWAY_TEST_IRC") else {
        return;
    };
    let message = |target: String| Message::Irc {
        channel: Text::Plain(target),
        lines: vec!["hello".into()],
        notice: false,
        join: false,
        nick: None,
        password: None,
        nickserv_password: None,
        channel_key: None,
    };
    // The address policy refuses loopback unless allowed.
    let mut strict = settings("", None);
    strict.reach = Arc::new(|_, ip| ip.is_loopback().then(|| "a loopback address".to_owned()));
    let err = send(strict, &message(format!("{addr}#x")), &NoSecrets).unwrap_err();
    assert!(err.to_string().contains("loopback"), "{err}");
    assert!(!err.retryable());
    // A message to a channel nobody is in, without joining, is refused by the server.
    let err = send(
        settings("", None),
        &message(format!("{addr}#{}", unique("empty").replace('-', ""))),
        &NoSecrets,
    )
    .unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");
}

#[test]
fn slack_posts_what_travis_posts_to_the_room() {
    let slack = StandIn::start(Checks::Slack {
        token: "t0ken_1".into(),
    });
    let url = format!(
        "{}/services/hooks/travis?account={{account}}&token={{token}}",
        slack.url
    );
    let n = notification(
        Channel::Slack {
            rooms: vec![Text::Secure("ENC".into())],
            on_pull_requests: true,
        },
        &[],
    );
    let message = &compose(&n, &facts("slack"))[0];
    assert_eq!(
        message.describe().split(':').next(),
        Some("slack to [secure]")
    );
    send(
        settings(&url, None),
        message,
        &OneSecret("ENC", "acme:t0ken_1#builds"),
    )
    .unwrap();
    let got = slack.wait_for(1, 10);
    assert_eq!(got[0].rejected, None, "{got:?}");
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["channel"], "#builds");
    assert_eq!(body["attachments"][0]["color"], "good");
    assert_eq!(
        body["attachments"][0]["text"],
        "Build <https://ci.example.org/builds/17|#17> (<|0123456>) of acme/app@main by Ada passed in 1 min 5 sec"
    );
    // A wrong token is a 4xx: not retried, and the token is not in the error.
    let err = send(
        settings(&url, None),
        message,
        &OneSecret("ENC", "acme:wrong#builds"),
    )
    .unwrap_err();
    assert!(
        !err.retryable() && !err.to_string().contains("wrong"),
        "{err}"
    );
    // No Slack address configured: given up at once, saying what to set; nothing is sent.
    let before = slack.received().len();
    let unset = Settings {
        slack_url: None,
        ..settings(&url, None)
    };
    let err = send(unset, message, &OneSecret("ENC", "acme:t0ken_1#builds")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no Slack endpoint is configured (slack_url under [notifications])"
    );
    assert!(!err.retryable());
    assert_eq!(slack.received().len(), before);
}

#[test]
fn webhooks_carry_travis_payload_form_encoded_and_signed() {
    let key = Arc::new(Mutex::new(None));
    let receiver = StandIn::start(Checks::Webhook {
        public_key: key.clone(),
    });
    let (signing, _) = SigningKey::generate().unwrap();
    *key.lock().unwrap() = Some(ed25519_from_pem(&signing.public_key_pem()));
    let signing = Arc::new(signing);
    let n = notification(
        Channel::Webhooks {
            urls: vec![Text::Plain(format!("{}/hook", receiver.url))],
        },
        &[],
    );
    let message = &compose(&n, &facts("hook"))[0];
    send(settings("", Some(signing.clone())), message, &NoSecrets).unwrap();
    let got = receiver.wait_for(1, 10);
    assert_eq!(got[0].rejected, None, "{got:?}");
    let payload: serde_json::Value =
        serde_json::from_str(&form_payload(&got[0].body).unwrap()).unwrap();
    assert_eq!(payload["state"], "passed");
    assert_eq!(payload["status_message"], "Fixed");
    assert_eq!(payload["result"], 0);
    assert_eq!(payload["repository"]["owner_name"], "acme");
    assert_eq!(payload["build_url"], "https://ci.example.org/builds/17");

    // Another server's key does not verify: the receiver refuses, and it is not retried.
    let (other, _) = SigningKey::generate().unwrap();
    let err = send(settings("", Some(Arc::new(other))), message, &NoSecrets).unwrap_err();
    assert!(!err.retryable(), "{err}");
    assert!(
        receiver.wait_for(2, 10)[1].rejected.as_deref() == Some("the signature does not verify")
    );

    // Loopback is refused unless allowed.
    let mut strict = settings("", Some(signing));
    strict.reach = Arc::new(|_, ip| ip.is_loopback().then(|| "a loopback address".to_owned()));
    let err = send(strict, message, &NoSecrets).unwrap_err();
    assert!(err.to_string().contains("loopback"), "{err}");
    assert_eq!(receiver.received().len(), 2);
}
