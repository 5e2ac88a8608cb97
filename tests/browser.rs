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

use crate::support::api::{Harness, start, start_with};
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

/// Types each value into the field of that id, replacing what was there.
async fn fill(c: &Client, fields: &[(&str, &str)]) {
    for (id, value) in fields {
        let field = c.find(Locator::Id(id)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
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
    fill(
        &c,
        &[
            ("name", "formed"),
            ("auth_url", auth_url.as_str()),
            ("username", "admin"),
            ("project_name", "admin"),
            ("password", "secret"),
        ],
    )
    .await;
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

/// Where screenshots go: `SCREENSHOT_DIR`, else `target/screenshots`.
fn screenshot_dir() -> std::path::PathBuf {
    let dir = std::env::var_os("SCREENSHOT_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots"),
        std::path::PathBuf::from,
    );
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    std::fs::write(screenshot_dir().join(name), png).unwrap();
}

/// A number the page computes.
async fn js_number(c: &Client, script: &str) -> f64 {
    c.execute(script, vec![])
        .await
        .unwrap()
        .as_f64()
        .unwrap_or_else(|| panic!("{script} is not a number"))
}

/// The dashboard at a glance, on a desktop and on a phone: quota bars
/// drawn to scale under the strict CSP, health in words, the last hours
/// per region and their charts, human dates, the waiting reason in short
/// with the detail on demand; nothing wider than a 390 px screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_reads_at_a_glance_on_a_desktop_and_a_phone() {
    let h = start(ApiConfig::default()).await;
    // Something used, something failing, something waiting.
    let launched = h
        .call(
            "POST",
            "/v1/instances",
            Some(&h.admin),
            Some(json!({"profile": "small", "count": 2, "placement": {"allow_regions": ["north-1"]}})),
        )
        .await;
    assert_eq!(launched.status, 202, "{}", launched.text);
    h.sim
        .set_faults(
            "south",
            Some("south-2"),
            oms_sim::Faults {
                outage: Some(oms_sim::Outage::Maintenance),
                ..oms_sim::Faults::default()
            },
        )
        .unwrap();
    let waiting = h
        .call(
            "POST",
            "/v1/instances",
            Some(&h.admin),
            Some(json!({"profile": "small", "placement": {"allow_regions": ["south-2"]}})),
        )
        .await;
    assert_eq!(waiting.status, 202, "{}", waiting.text);

    let (_driver, c, _profile) = browser().await;
    c.set_window_size(1400, 900).await.unwrap();
    sign_in(&c, &h).await;
    wait_text(
        &c,
        "tr.region[data-region='north-1']",
        "2 / 20",
        Duration::from_secs(30),
    )
    .await;
    wait_text(
        &c,
        "tr.region[data-region='north-1'] .health",
        "healthy",
        Duration::from_secs(10),
    )
    .await;
    let breaker = c
        .find(Locator::Css("tr.region[data-region='north-1'] .health"))
        .await
        .unwrap()
        .attr("title")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(breaker.contains("breaker closed"), "{breaker}");
    // Down, in a word, once its calls fail.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let word = c
            .find(Locator::Css("tr.region[data-region='south-2'] .health"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if ["down", "probing", "degraded"].contains(&word.as_str()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "south-2 still {word}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The bar is drawn to scale: 2 of 20 fills a tenth of its track.
    let fraction = js_number(
        &c,
        "var bar = document.querySelector(\"tr.region[data-region='north-1'] svg.bar\");
         return bar.querySelector('rect.fill').getBoundingClientRect().width /
                bar.querySelector('rect.track').getBoundingClientRect().width;",
    )
    .await;
    assert!(
        (0.08..0.12).contains(&fraction),
        "the bar fills {fraction} of its track"
    );
    // The last hours, per region.
    let cells = js_number(
        &c,
        "return document.querySelectorAll(\"tr.region[data-region='south-2'] svg.strip rect\").length;",
    )
    .await;
    assert!(cells >= 1.0, "no history cells");
    // The waiting reason in short, the regions on demand.
    wait_text(
        &c,
        "#queue details summary",
        "region",
        Duration::from_secs(20),
    )
    .await;
    let open = c
        .execute(
            "return document.querySelector('#queue details').open;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(open, json!(false), "the detail is on demand");
    // Human dates, the exact time on hover.
    let title = c
        .find(Locator::Css("#queue time"))
        .await
        .unwrap()
        .attr("title")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(title.ends_with('Z') && title.contains('T'), "{title}");
    wait_text(&c, "#queue time", "ago", Duration::from_secs(5)).await;
    screenshot(&c, "dashboard-1400x900.png").await;

    // The region's charts.
    c.find(Locator::Css(
        "tr.region[data-region='south-2'] td[data-label='Region'] a",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_text(&c, "h1", "south / south-2", Duration::from_secs(10)).await;
    wait_text(&c, "#history-span", "samples", Duration::from_secs(20)).await;
    let charts = js_number(
        &c,
        "return document.querySelectorAll('#charts svg.chart').length;",
    )
    .await;
    assert_eq!(charts, 4.0);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while js_number(&c, "return document.querySelectorAll('#charts rect.kind.server_error, #charts rect.kind.transport').length;").await < 1.0 {
        assert!(std::time::Instant::now() < deadline, "no failure drawn: {}", c.source().await.unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    screenshot(&c, "region-1400x900.png").await;

    // A phone: nothing wider than the screen.
    c.set_window_size(390, 844).await.unwrap();
    for path in ["/", "/instances", "/accounts", "/tokens"] {
        c.goto(&format!("{}{path}", h.base)).await.unwrap();
        wait_text(&c, "h1", "", Duration::from_secs(5)).await;
        let (scroll, inner) = (
            js_number(&c, "return document.documentElement.scrollWidth;").await,
            js_number(&c, "return window.innerWidth;").await,
        );
        assert!(
            scroll <= inner + 0.5,
            "{path} is {scroll} px wide on a {inner} px screen"
        );
        if path == "/" {
            screenshot(&c, "dashboard-390x844.png").await;
        }
    }
    c.close().await.unwrap();
}

/// Accounts say who and where they are; a connection test's secret serves
/// the registration that follows without retyping; a failed attempt is
/// red on the timeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_show_who_they_are_a_test_registers_without_retyping_failures_are_red() {
    let h = start_with(ApiConfig::default(), |p| {
        if p.name == "south" {
            p.regions[0].faults.build_error_rate = 1.0;
        }
    })
    .await;
    let (_driver, c, _profile) = browser().await;
    c.set_window_size(1400, 900).await.unwrap();
    sign_in(&c, &h).await;
    c.goto(&format!("{}/accounts", h.base)).await.unwrap();
    let north = h.sim.providers()[0].auth_url.clone();
    let host = url::Url::parse(&north).unwrap();
    let keystone = format!("{}:{}", host.host_str().unwrap(), host.port().unwrap());
    wait_text(
        &c,
        "tr.account[data-name='north'] .provider",
        &keystone,
        Duration::from_secs(5),
    )
    .await;
    wait_text(
        &c,
        "tr.account[data-name='north'] .project",
        "demo",
        Duration::from_secs(5),
    )
    .await;
    wait_text(
        &c,
        "tr.account[data-name='north'] .user",
        "demo",
        Duration::from_secs(5),
    )
    .await;
    wait_text(
        &c,
        "tr.account[data-name='north'] .regions-of",
        "north-1",
        Duration::from_secs(10),
    )
    .await;
    wait_text(
        &c,
        "tr.account[data-name='north']",
        "connected",
        Duration::from_secs(10),
    )
    .await;

    // Test, then register: the password is typed once.
    c.goto(&format!("{}/accounts/new", h.base)).await.unwrap();
    fill(
        &c,
        &[
            ("name", "tested"),
            ("auth_url", north.as_str()),
            ("username", "admin"),
            ("project_name", "admin"),
            ("password", "secret"),
        ],
    )
    .await;
    c.find(Locator::Id("test-connection"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "#tested", "north-1", Duration::from_secs(20)).await;
    let password = c
        .find(Locator::Id("password"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(
        password.as_deref(),
        Some(""),
        "the password came back in the page"
    );
    assert!(
        !c.source().await.unwrap().contains("value=\"secret\""),
        "the secret is in the page"
    );
    c.find(Locator::Id("save-account"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "#regions", "tested", Duration::from_secs(20)).await;
    assert!(
        h.store
            .list_accounts()
            .unwrap()
            .iter()
            .any(|a| a.name == "tested")
    );

    // A failed attempt is red on the timeline.
    let launched = h
        .call(
            "POST",
            "/v1/instances",
            Some(&h.admin),
            Some(json!({"profile": "small", "max_attempts": 1, "placement": {"allow_regions": ["south-1"]}})),
        )
        .await;
    let id = launched.body["instances"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    c.goto(&format!("{}/instances/{id}", h.base)).await.unwrap();
    wait_text(
        &c,
        "#timeline li.failure",
        "attempt failed",
        Duration::from_secs(30),
    )
    .await;
    let colour = c
        .execute(
            "return getComputedStyle(document.querySelector('#timeline li.failure .status')).backgroundColor;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        colour,
        json!("rgb(254, 226, 226)"),
        "a failure's badge is red"
    );
    screenshot(&c, "instance-1400x900.png").await;
    c.close().await.unwrap();
}
