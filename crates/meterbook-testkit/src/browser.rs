//! Answers read whole, and a portal browser: a session cookie and the
//! session's form (CSRF) token, kept across requests.

use meterbook_server::portal::session;
use reqwest::header::HeaderMap;

/// A response, read whole: bytes by default, or text (`Resp<String>`).
#[derive(Debug)]
pub struct Resp<B = Vec<u8>> {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: B,
}

impl<B> Resp<B> {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header").to_string())
    }

    /// The `Location` header, or "".
    pub fn location(&self) -> String {
        self.header("location").unwrap_or_default()
    }

    /// The `Set-Cookie` line of cookie `name`, if any.
    pub fn cookie_line(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&prefix))
            .map(str::to_string)
    }

    /// The session cookie's `Set-Cookie` line, if any.
    pub fn session_cookie_line(&self) -> Option<String> {
        self.cookie_line(session::COOKIE)
    }

    /// Whether the body is one of the portal's pages (not the API's JSON).
    pub fn is_html(&self) -> bool {
        self.header("content-type")
            .is_some_and(|c| c.starts_with("text/html"))
    }
}

impl Resp<Vec<u8>> {
    pub(crate) async fn read(r: reqwest::Response) -> Resp {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes().await.expect("body").to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn into_text(self) -> Resp<String> {
        Resp {
            status: self.status,
            headers: self.headers,
            body: String::from_utf8_lossy(&self.body).into_owned(),
        }
    }
}

impl Resp<String> {
    /// Status, location and the start of the body, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "{} {} {}",
            self.status,
            self.location(),
            self.body.chars().take(600).collect::<String>()
        )
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.describe()))
    }
}

/// The value of the first hidden `csrf` field of a page.
pub fn csrf_of(page: &str) -> Option<String> {
    let marker = r#"name="csrf" value=""#;
    let i = page.find(marker)? + marker.len();
    let rest = &page[i..];
    Some(rest[..rest.find('"')?].to_string())
}

/// A browser on the portal: it sends its session cookie with every request
/// and the session's form token with every form it submits.
#[derive(Clone, Debug)]
pub struct Browser {
    client: reqwest::Client,
    base: String,
    /// The session cookie's value ("" when not signed in).
    pub token: String,
    /// The session's form token, read from a page.
    pub csrf: String,
}

impl Browser {
    pub(crate) fn new(client: reqwest::Client, base: String) -> Browser {
        Browser {
            client,
            base,
            token: String::new(),
            csrf: String::new(),
        }
    }

    /// A browser that is not signed in, on the server at `base`
    /// (`http://HOST:PORT`), following no redirects: for servers a test
    /// runs as processes rather than through [`crate::spawn`].
    pub fn at(base: &str) -> Browser {
        let client = reqwest::Client::builder()
            .no_gzip()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Browser::new(client, base.to_string())
    }

    /// The same session (cookie and form token) on another node at `base`.
    pub fn on(&self, base: &str) -> Browser {
        Browser {
            base: base.to_string(),
            ..self.clone()
        }
    }

    /// The same session in another browser (a copied cookie).
    pub fn with_token(&self, token: &str) -> Browser {
        Browser {
            token: token.to_string(),
            ..self.clone()
        }
    }

    /// `mb_session=...` as a `Cookie` header sends it.
    pub fn cookie(&self) -> String {
        format!("{}={}", session::COOKIE, self.token)
    }

    /// The session's key in the store.
    pub fn hash(&self) -> [u8; 32] {
        session::token_hash(&self.token)
    }

    fn with_cookie(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if self.token.is_empty() {
            rb
        } else {
            rb.header("cookie", self.cookie())
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Resp {
        Resp::read(rb.send().await.expect("request")).await
    }

    /// GET, as bytes.
    pub async fn get_bytes(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut rb = self.with_cookie(self.client.get(format!("{}{path}", self.base)));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        self.send(rb).await
    }

    /// GET a page.
    pub async fn get(&self, path: &str) -> Resp<String> {
        self.get_bytes(path, &[]).await.into_text()
    }

    pub async fn head(&self, path: &str) -> Resp {
        self.send(self.with_cookie(self.client.head(format!("{}{path}", self.base))))
            .await
    }

    /// POST a form as given (no form token added).
    pub async fn post_bytes(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        self.send(self.with_cookie(self.client.post(format!("{}{path}", self.base)).form(form)))
            .await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Resp<String> {
        self.post_bytes(path, form).await.into_text()
    }

    /// POST a form with the session's form token added.
    pub async fn submit(&self, path: &str, form: &[(&str, &str)]) -> Resp<String> {
        let mut f = vec![("csrf", self.csrf.as_str())];
        f.extend_from_slice(form);
        self.post(path, &f).await
    }

    /// The sign-in form's cookie (`mb_signin=...`) and token, as a browser
    /// gets them.
    pub async fn sign_in_form(&self) -> (String, String) {
        let page = self.get("/portal/sign-in").await;
        let cookie = page
            .cookie_line("mb_signin")
            .and_then(|v| v.split(';').next().map(str::to_string))
            .expect("a sign-in form cookie");
        (
            cookie,
            csrf_of(&page.body).expect("a csrf field on the sign-in form"),
        )
    }

    /// Fills in and posts the sign-in form, with extra request headers.
    pub async fn sign_in_raw(
        &self,
        email: &str,
        pw: &str,
        headers: &[(&str, &str)],
    ) -> Resp<String> {
        let (cookie, csrf) = self.sign_in_form().await;
        let mut rb = self
            .client
            .post(format!("{}/portal/sign-in", self.base))
            .header("cookie", cookie)
            .form(&[("email", email), ("password", pw), ("csrf", csrf.as_str())]);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        self.send(rb).await.into_text()
    }

    /// Signs in (asserting it works: 303 to `/portal` with a 256-bit session
    /// token) and keeps the session cookie. The form token is read later, by
    /// [`Browser::read_csrf`].
    pub async fn sign_in(&mut self, email: &str, pw: &str) {
        let r = self.sign_in_raw(email, pw, &[]).await;
        assert_eq!(r.status, 303, "sign-in of {email}: {}", r.describe());
        assert_eq!(r.location(), "/portal", "sign-in of {email}");
        let line = r.session_cookie_line().expect("a session cookie");
        let token = line[session::COOKIE.len() + 1..]
            .split(';')
            .next()
            .expect("value")
            .to_string();
        assert_eq!(token.len(), 64, "a 256-bit token in hex: {line}");
        self.token = token;
    }

    /// Reads the session's form token from the page at `path` (which must
    /// answer 200).
    pub async fn read_csrf(&mut self, path: &str) {
        let page = self.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.describe());
        self.csrf = csrf_of(&page.body).expect("a csrf field in the layout");
    }

    /// Reads the form token from the page `/portal` leads to, if it leads
    /// anywhere (a user without roles gets no token).
    pub async fn read_csrf_from_home(&mut self) {
        let home = self.get("/portal").await;
        if home.status == 303 {
            let to = home.location();
            self.read_csrf(&to).await;
        }
    }
}
