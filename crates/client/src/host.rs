//! The host: information, validation, the OpenAPI document, join tokens and
//! trust.

use ferrovirt_api::{
    HostCheck, HostInfo, JoinToken, TokenPost, TokenReply, TrustPost, TrustedClient,
};
use reqwest::Method;

use crate::transport::{Client, ClientError};

impl Client {
    /// `GET /1.0`: whether the server answers at all.
    pub async fn server_info(&self) -> Result<serde_json::Value, ClientError> {
        self.get("/1.0").await
    }

    pub async fn host_info(&self) -> Result<HostInfo, ClientError> {
        self.get("/1.0/host").await
    }

    pub async fn host_check(&self) -> Result<HostCheck, ClientError> {
        self.get("/1.0/host/check").await
    }

    /// The OpenAPI document of the daemon's API.
    pub async fn openapi(&self) -> Result<serde_json::Value, ClientError> {
        self.get("/1.0/openapi.json").await
    }

    /// Makes a one-time join token on this host for a client called `name`.
    pub async fn new_token(&self, name: &str) -> Result<String, ClientError> {
        self.token(&TokenPost::admin(name)).await
    }

    /// Makes a one-time join token granting what `req` says (role,
    /// instances, expiry).
    pub async fn token(&self, req: &TokenPost) -> Result<String, ClientError> {
        let reply: TokenReply = self
            .call(Method::POST, "/1.0/host/tokens", Some(req))
            .await?;
        Ok(reply.token)
    }

    /// Redeems a join token's secret: this client's certificate becomes trusted.
    pub async fn redeem_token(&self, secret: &str) -> Result<(), ClientError> {
        let req = TrustPost {
            secret: secret.into(),
        };
        self.send_only(Method::POST, "/1.0/host/trust", Some(&req))
            .await
    }

    /// The client certificates this host trusts.
    pub async fn trusted_clients(&self) -> Result<Vec<TrustedClient>, ClientError> {
        self.get("/1.0/host/trust").await
    }

    /// Stops trusting the client certificate with this fingerprint.
    pub async fn untrust(&self, fingerprint: &str) -> Result<(), ClientError> {
        let path = format!("/1.0/host/trust/{}", crate::transport::enc(fingerprint));
        self.send_only(Method::DELETE, &path, None::<&()>).await
    }
}

/// Encodes a join token for people to copy around.
pub fn encode_token(t: &JoinToken) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(t).expect("token serializes"))
}

/// Decodes a join token.
pub fn decode_token(text: &str) -> Option<JoinToken> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim())
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_token_survives_encoding() {
        let t = JoinToken {
            name: "laptop".into(),
            fingerprint: "ab:cd".into(),
            addresses: vec!["10.0.0.1:8443".into()],
            secret: "s3cret".into(),
        };
        let text = encode_token(&t);
        assert!(!text.contains(['+', '/', '=']), "{text}");
        assert_eq!(decode_token(&format!(" {text}\n")), Some(t));
        assert_eq!(decode_token("not a token"), None);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Whatever is pasted as a token, decoding never panics.
            #[test]
            fn arbitrary_text_never_panics(text in ".{0,200}") {
                let _ = decode_token(&text);
            }

            /// Arbitrary bytes, base64-encoded, never panic either (they
            /// reach the JSON parser).
            #[test]
            fn arbitrary_payloads_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
                use base64::Engine;
                let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
                let _ = decode_token(&text);
            }

            /// Any token survives encode → decode.
            #[test]
            fn tokens_round_trip(
                name in ".{0,20}",
                fingerprint in "[0-9a-f:]{0,95}",
                addresses in prop::collection::vec(".{0,30}", 0..3),
                secret in ".{0,64}",
            ) {
                let t = JoinToken { name, fingerprint, addresses, secret };
                let text = encode_token(&t);
                prop_assert!(text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
                prop_assert_eq!(decode_token(&text), Some(t));
            }
        }
    }
}
