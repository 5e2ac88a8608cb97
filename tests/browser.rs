//! The pages in a real browser (headless Chromium over WebDriver): sign
//! in, register an account against oms-sim through the form and see its
//! regions appear, watch an instance become active without reloading,
//! open its timeline and delete it with the button; and the refusals.
//!
//! Needs `chromium` and `chromedriver` (Debian: chromium, chromium-driver),
//! which `.ci/run` installs.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::api::{Harness, start};
use fantoccini::{Client, ClientBuilder, Locator};
use oms_web::ApiConfig;
use serde_json::json;

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn browser() -> (Driver, Client, tempfile::TempDir) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver must be installed (apt-get install chromium chromium-driver)");
    let driver = Driver(driver);
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         format!("--user-data-dir={}", profile.path().display())]}),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let client = loop {
        match ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(client) => break client,
            Err(error) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no WebDriver session: {error}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    (driver, client, profile)
}

/// Waits for `selector` to exist and hold `text`.
async fn wait_text(c: &Client, selector: &str, text: &str, limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Ok(element) = c.find(Locator::Css(selector)).await
            && element.text().await.is_ok_and(|t| t.contains(text))
        {
            return;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "{selector} never showed {text:?}; page: {}",
                c.source().await.unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn sign_in(c: &Client, h: &Harness) {
    c.goto(&format!("{}/login", h.base)).await.unwrap();
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(&h.admin)
        .await
        .unwrap();
    c.find(Locator::Id("sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "h1", "Dashboard", Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_registers_an_account_and_follows_an_instance_in_the_browser() {
    let h = start(ApiConfig::default()).await;
    let (_driver, c, _profile) = browser().await;

    // Without a session, pages lead to the sign-in form.
    c.goto(&format!("{}/instances", h.base)).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));
    sign_in(&c, &h).await;

    // Register an account through the form; its regions appear on the
    // dashboard (which refreshes itself).
    c.goto(&format!("{}/accounts/new", h.base)).await.unwrap();
    let auth_url = h.sim.providers()[0].auth_url.clone();
    for (id, value) in [
        ("name", "formed"),
        ("auth_url", auth_url.as_str()),
        ("username", "admin"),
        ("project_name", "admin"),
        ("password", "secret"),
    ] {
        let field = c.find(Locator::Id(id)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }
    c.find(Locator::Id("save-account"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "#regions", "formed", Duration::from_secs(20)).await;
    wait_text(
        &c,
        "tr.region[data-region='north-2']",
        "healthy",
        Duration::from_secs(20),
    )
    .await;

    // Launch through the API and watch it become active on the
    // instances page without reloading it.
    let launched = h
        .call(
            "POST",
            "/v1/instances",
            Some(&h.admin),
            Some(json!({"profile": "small", "name_prefix": "watched"})),
        )
        .await;
    let id = launched.body["instances"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    c.goto(&format!("{}/instances", h.base)).await.unwrap();
    c.execute("window.notReloaded = true;", vec![])
        .await
        .unwrap();
    wait_text(
        &c,
        &format!("tr.instance[data-id='{id}']"),
        "active",
        Duration::from_secs(30),
    )
    .await;
    let same_page = c
        .execute("return window.notReloaded === true;", vec![])
        .await
        .unwrap();
    assert_eq!(same_page, json!(true), "the page was reloaded");

    // Its timeline.
    c.find(Locator::Css(&format!("tr.instance[data-id='{id}'] a")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "#timeline", "scheduled", Duration::from_secs(10)).await;
    wait_text(&c, "#timeline", "active at", Duration::from_secs(10)).await;

    // Delete with the button (after confirming).
    c.find(Locator::Id("delete"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.accept_alert().await.unwrap();
    wait_text(&c, "#status", "delet", Duration::from_secs(10)).await;
    wait_text(&c, "#status", "deleted", Duration::from_secs(30)).await;
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_shows_hostile_names_as_text_and_refuses_forged_forms() {
    let h = start(ApiConfig::default()).await;
    let mut evil = h.store.list_accounts().unwrap()[0].clone();
    evil.id = "evil".into();
    evil.name = "<script>alert(1)</script>".into();
    evil.enabled = false;
    h.store.put_account(&evil).unwrap();
    let (_driver, c, _profile) = browser().await;
    sign_in(&c, &h).await;
    c.goto(&format!("{}/accounts", h.base)).await.unwrap();
    wait_text(
        &c,
        "tr.account[data-name='<script>alert(1)</script>'] td",
        "<script>alert(1)</script>",
        Duration::from_secs(5),
    )
    .await;
    assert!(c.get_alert_text().await.is_err(), "a script ran");

    // A form whose CSRF token was tampered with changes nothing.
    let before = h.census();
    c.goto(&format!("{}/tokens", h.base)).await.unwrap();
    c.execute(
        "document.querySelector('.token-form input[name=csrf]').value = 'forged';
         document.querySelector('.token-form input[name=name]').value = 'sneaky';
         document.querySelector('.token-form').submit();",
        vec![],
    )
    .await
    .unwrap();
    wait_text(&c, "#message", "security token", Duration::from_secs(10)).await;
    assert_eq!(h.census(), before);
    c.close().await.unwrap();
}
