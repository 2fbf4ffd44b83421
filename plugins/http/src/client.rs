//! The HTTP side shared by every plugin of this crate: one blocking
//! [`ureq`] agent per plugin, JSON in and out, and the answer sorted into
//! "done", "try again later" and "give up".

use std::time::Duration;

use casework_core::plugin::PluginError;

/// A JSON answer with a 2xx status.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Reply {
    pub status: u16,
    /// The body as JSON; `null` for an empty body, a string when the body
    /// is not JSON (some chat webhooks answer `ok`).
    pub body: serde_json::Value,
}

/// A blocking HTTP client with a timeout for the whole exchange.
#[derive(Clone, Debug)]
pub(crate) struct Client {
    agent: ureq::Agent,
}

/// The most of a response body kept in an error message: enough to see
/// what the server said, not a whole HTML error page in the log.
const MAX_ERROR_BODY: usize = 500;

impl Client {
    pub(crate) fn new(timeout: Duration) -> Self {
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::NativeTls)
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // 4xx/5xx are answers to sort, with a body worth reading.
            .http_status_as_error(false)
            .tls_config(tls)
            .build()
            .new_agent();
        Client { agent }
    }

    /// POST `body` as JSON to `url` with `headers`; sort the outcome.
    ///
    /// 2xx: the reply. 5xx, 408, 429, timeouts, refused or dropped
    /// connections, unknown hosts: [`PluginError::Transient`] (the system
    /// may be restarting). Any other status, or a URL that cannot work:
    /// [`PluginError::Permanent`], with the status and the start of the
    /// response body, since retrying the same request cannot help.
    pub(crate) fn post_json(
        &self,
        plugin: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &serde_json::Value,
    ) -> Result<Reply, PluginError> {
        let transient = |message: String| PluginError::Transient {
            plugin: plugin.to_owned(),
            message,
        };
        let permanent = |message: String| PluginError::Permanent {
            plugin: plugin.to_owned(),
            message,
        };
        let mut request = self
            .agent
            .post(url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let response = match request.send(&bytes[..]) {
            Ok(r) => r,
            Err(e) if is_transient(&e) => return Err(transient(format!("POST {url}: {e}"))),
            Err(e) => return Err(permanent(format!("POST {url}: {e}"))),
        };
        let status = response.status().as_u16();
        let text = match response.into_body().read_to_string() {
            Ok(t) => t,
            Err(e) if (200..300).contains(&status) => {
                // The request was carried out but the answer was lost:
                // retrying is safe, the idempotency key makes it a no-op.
                return Err(transient(format!(
                    "POST {url}: {status} but the response could not be read: {e}"
                )));
            }
            Err(_) => String::new(),
        };
        if (200..300).contains(&status) {
            let body = if text.trim().is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
            };
            return Ok(Reply { status, body });
        }
        let message = format!("POST {url}: HTTP {status}: {}", truncate(text.trim()));
        if status >= 500 || status == 408 || status == 429 {
            Err(transient(message))
        } else {
            Err(permanent(message))
        }
    }
}

/// Failures of the network or the far side, worth another attempt; a
/// malformed URL or a refused TLS policy is not.
fn is_transient(e: &ureq::Error) -> bool {
    !matches!(
        e,
        ureq::Error::BadUri(_)
            | ureq::Error::Http(_)
            | ureq::Error::InvalidProxyUrl
            | ureq::Error::RequireHttpsOnly(_)
            | ureq::Error::TlsRequired
    )
}

fn truncate(text: &str) -> String {
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    match text.char_indices().nth(MAX_ERROR_BODY) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}
