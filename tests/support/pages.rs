//! A cookie-keeping HTTP client for the operator pages.

use super::api::Harness;

pub struct Browser<'a> {
    pub h: &'a Harness,
    pub cookie: std::sync::Mutex<Option<String>>,
    pub http: reqwest::Client,
}

pub struct Got {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl<'a> Browser<'a> {
    pub fn new(h: &'a Harness) -> Browser<'a> {
        Browser {
            h,
            cookie: std::sync::Mutex::new(None),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
    ) -> Got {
        let mut request = self.http.request(method, format!("{}{path}", self.h.base));
        if let Some(cookie) = self.cookie.lock().unwrap().clone() {
            request = request.header("Cookie", cookie);
        }
        if let Some(form) = form {
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish();
            request = request
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body);
        }
        let response = request.send().await.unwrap();
        if let Some(set) = response.headers().get("set-cookie") {
            let set = set.to_str().unwrap();
            assert!(
                set.contains("HttpOnly") && set.contains("SameSite=Strict"),
                "{set}"
            );
            *self.cookie.lock().unwrap() = Some(set.split(';').next().unwrap().to_owned());
        }
        Got {
            status: response.status().as_u16(),
            location: response
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned()),
            body: response.text().await.unwrap(),
        }
    }

    pub async fn get(&self, path: &str) -> Got {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Got {
        self.send(reqwest::Method::POST, path, Some(form)).await
    }

    /// The CSRF token of the page at `path`.
    pub async fn csrf(&self, path: &str) -> String {
        let page = self.get(path).await;
        let at = page
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a form with a csrf field");
        let rest = &page.body[at + 19..];
        rest[..rest.find('"').unwrap()].to_owned()
    }

    pub async fn sign_in(&self) {
        self.sign_in_with(&self.h.admin.clone()).await;
    }

    pub async fn sign_in_with(&self, admin: &str) {
        let csrf = self.csrf("/login").await;
        let signed = self
            .post("/login", &[("csrf", &csrf), ("token", admin)])
            .await;
        assert_eq!(signed.status, 303);
        assert_eq!(signed.location.as_deref(), Some("/"));
    }
}
