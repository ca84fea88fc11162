//! The dashboard end to end, in headless Chromium driven over WebDriver (chromedriver and
//! fantoccini): the board shows coloured cells, a supervisor drills down to a case and its
//! audit trail, and a breach recorded while the page is open turns a cell red without a
//! reload; a business calendar that runs out within 45 days is named in a banner. Keeps a
//! screenshot in `target/dashboard-e2e/dashboard.png`. Signing in: a token pasted or in a
//! login link shows the dashboard with the identity; a bad one the login page with the
//! reason, and at phone size (390 × 844) the sign-in fits the screen
//! (`target/dashboard-e2e/dashboard-login*.png`, copied to `docs/`).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`deploy/dev/ensure-services.sh`
//! installs them). Without them the test fails: it never skips.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use support::{local, Week, COMMUNITY, DISTRICT, GREEN_BUILDINGS, RED_BUILDINGS};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Long enough for a loaded 2-core machine; the page normally settles in well under a second.
const PATIENCE: Duration = Duration::from_secs(30);

/// A chromedriver on a free local port, with a fresh browser profile; killed on drop.
struct ChromeDriver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
    profile_path: PathBuf,
}

impl ChromeDriver {
    async fn start() -> Self {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: install Debian's chromium and chromium-driver \
                 (bash deploy/dev/ensure-services.sh does)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/status");
        let ready = async {
            loop {
                if let Ok(response) = reqwest::get(&status).await {
                    if let Ok(body) = response.json::<serde_json::Value>().await {
                        if body["value"]["ready"] == true {
                            return;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::time::timeout(PATIENCE, ready)
            .await
            .expect("chromedriver answers on its port");
        let profile = tempfile::tempdir().expect("a profile directory");
        Self {
            child,
            url,
            profile_path: profile.path().to_owned(),
            _profile: profile,
        }
    }

    async fn browser(&self) -> Client {
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1600,1250", "--lang=zh-CN",
                    format!("--user-data-dir={}", self.profile_path.display()),
                ]
            }
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("an object literal")
        };
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_for(browser: &Client, css: &str) -> fantoccini::elements::Element {
    browser
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("the page never showed `{css}`: {error}"))
}

async fn text_of(browser: &Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("no `{css}`: {error}"))
        .text()
        .await
        .expect("its text")
}

fn screenshot_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map_or_else(|| PathBuf::from("target"), Path::to_owned)
        .join("dashboard-e2e")
}

async fn save_screenshot(browser: &Client, name: &str) -> PathBuf {
    let png = browser.screenshot().await.expect("a screenshot");
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).expect("the screenshot directory");
    let path = dir.join(name);
    std::fs::write(&path, png).expect("the screenshot is written");
    path
}

#[tokio::test]
async fn a_supervisor_watches_the_board_drills_down_to_an_audit_trail_and_sees_a_breach_arrive() {
    let driver = ChromeDriver::start().await;
    let mut week = Week::realistic().await;
    let served = week.serve().await;
    let browser = driver.browser().await;
    // Signed in by a login link (an auditor: the whole city).
    browser
        .goto(&served.url(&format!("/login#token={}", support::auditor_token())))
        .await
        .expect("the page opens");

    // The board: community tiles lit by their worst open case, counts at the top.
    let red_community = &RED_BUILDINGS[0][..12];
    wait_for(
        &browser,
        &format!(".tile[data-code=\"{red_community}\"][data-light=\"red\"]"),
    )
    .await;
    wait_for(&browser, ".tile[data-light=\"yellow\"]").await;
    let green_community = &GREEN_BUILDINGS[1][..12];
    wait_for(
        &browser,
        &format!(".tile[data-code=\"{green_community}\"][data-light=\"green\"]"),
    )
    .await;
    assert_eq!(text_of(&browser, "#total-red").await, "2");
    assert_eq!(
        browser
            .find_all(Locator::Css(".tile[data-light=\"red\"]"))
            .await
            .unwrap()
            .len(),
        2,
        "the two communities with an overdue case"
    );
    assert_eq!(
        browser.find_all(Locator::Css(".tile")).await.unwrap().len(),
        224,
        "every community of the city has a tile"
    );
    wait_for(&browser, "#overdue tr.overdue-row").await;
    assert_eq!(
        browser
            .find_all(Locator::Css("#overdue tr.overdue-row"))
            .await
            .unwrap()
            .len(),
        2
    );
    wait_for(&browser, "#chart-rates path.series").await;
    wait_for(&browser, "#ranking-red li").await;
    // Each figure says how it is counted, on hover and in a footnote, with its cohort.
    let definitions = text_of(&browser, "#definitions").await;
    for words in [
        "结案率 = 结案 ÷ 应结案",
        "按期结案率 = 按期结案 ÷ 应结案",
        "按应结案日计，计入当时承办的网格",
        "重新打开的案件在下次结案或超时时再次应结案",
        "满意率 = 评价 4–5 分",
        "按上报日计",
        "红榜取较好的一半、黑榜取较差的一半，互不重复",
    ] {
        assert!(
            definitions.contains(words),
            "the footnotes say `{words}`:\n{definitions}"
        );
    }
    for (figure, words) in [
        ("rate-close", "结案率 = 结案 ÷ 应结案"),
        ("rate-on-time", "按期结案率 = 按期结案 ÷ 应结案"),
        ("rate-satisfied", "按上报日计"),
    ] {
        let hover = browser
            .execute(
                "return document.getElementById(arguments[0]).parentElement.title;",
                vec![json!(figure)],
            )
            .await
            .unwrap();
        let hover = hover.as_str().unwrap_or_default();
        assert!(hover.contains(words), "#{figure}'s hover: {hover}");
    }
    // The board states its minimum: the week's cells have three or four cases each, fewer
    // than the ten due cases a cell needs to be ranked.
    let note = wait_for(&browser, "#ranking-note[data-min-due=\"10\"]").await;
    let note = note.text().await.unwrap();
    assert!(
        note.contains("应结案 ≥ 10 件的楼栋网格参与排名：0 个"),
        "{note}"
    );
    wait_for(&browser, "#live[data-state=\"open\"]").await;
    // The week is in late November: the bundled calendar's holidays are published only through
    // 2026-12-31, less than 45 days ahead, so a banner names the calendar to renew.
    let banner = wait_for(&browser, "#sla-banner:not([hidden])[data-calendars=\"cn\"]").await;
    let text = banner.text().await.expect("the banner's text");
    assert!(
        text.contains("全国 2026 national working calendar") && text.contains("2026-12-31"),
        "{text}"
    );
    save_screenshot(&browser, "board-before.png").await;

    // Drill down: district → community → building → case → audit trail.
    browser
        .find(Locator::Css(&format!(
            ".district-head[data-district=\"{DISTRICT}\"]"
        )))
        .await
        .expect("the district's heading")
        .click()
        .await
        .unwrap();
    wait_for(
        &browser,
        &format!(".tiles.big .tile[data-code=\"{COMMUNITY}\"]"),
    )
    .await
    .click()
    .await
    .unwrap();
    let building = wait_for(
        &browser,
        &format!(".tile[data-code=\"{}\"]", RED_BUILDINGS[0]),
    )
    .await;
    assert_eq!(
        building.attr("data-light").await.unwrap().as_deref(),
        Some("red")
    );
    let green = wait_for(
        &browser,
        &format!(".tile[data-code=\"{}\"]", GREEN_BUILDINGS[0]),
    )
    .await;
    assert_eq!(
        green.attr("data-light").await.unwrap().as_deref(),
        Some("green")
    );
    save_screenshot(&browser, "community.png").await;
    assert!(text_of(&browser, "#crumbs").await.contains("学院公寓社区"));
    building.click().await.unwrap();
    wait_for(&browser, "#cases tr.case-row[data-light=\"red\"]")
        .await
        .click()
        .await
        .unwrap();
    wait_for(&browser, "#audit tr.entry").await;
    let entries = browser
        .find_all(Locator::Css("#audit tr.entry"))
        .await
        .unwrap();
    assert!(
        entries.len() >= 5,
        "reported, accepted, dispatched, warning, breach: {}",
        entries.len()
    );
    let trail = text_of(&browser, "#audit").await;
    for words in [
        "上报 reported",
        "派遣 dispatched",
        "预警 SLA warning",
        "超时 SLA breach",
        "系统",
    ] {
        assert!(trail.contains(words), "the trail shows `{words}`:\n{trail}");
    }
    let chain = wait_for(&browser, "#chain-status").await;
    assert_eq!(
        chain.attr("data-intact").await.unwrap().as_deref(),
        Some("true")
    );
    save_screenshot(&browser, "case-audit.png").await;

    // Back to the whole city; mark the page so a reload would show.
    browser
        .find(Locator::Css("#crumbs a[data-go=\"city\"]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&browser, &format!(".tile[data-code=\"{red_community}\"]")).await;
    browser
        .execute("window.stillTheSamePage = true; return true;", vec![])
        .await
        .unwrap();
    let yellow_community = "330106001002";
    let tile = wait_for(
        &browser,
        &format!(".tile[data-code=\"{yellow_community}\"]"),
    )
    .await;
    assert_eq!(
        tile.attr("data-light").await.unwrap().as_deref(),
        Some("yellow")
    );

    // 11:10: the tasks ignored since 09:10 breach; the page turns without a reload.
    week.run_until(local(24, 11, 15)).await;
    wait_for(
        &browser,
        &format!(".tile[data-code=\"{yellow_community}\"][data-light=\"red\"]"),
    )
    .await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while text_of(&browser, "#total-red").await != "4" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the red total never reached 4"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for(&browser, "#overdue tr.overdue-row:nth-child(4)").await;
    let same_page = browser
        .execute("return window.stillTheSamePage === true;", vec![])
        .await
        .unwrap();
    assert_eq!(
        same_page,
        json!(true),
        "the page updated itself, it was not reloaded"
    );

    let path = save_screenshot(&browser, "dashboard.png").await;
    eprintln!("screenshot: {}", path.display());

    // On a supervisor's phone (390 × 844) the page leads with what needs action: the
    // overdue list starts on the first screen, above the map's tiles, and nothing but the
    // list's own table scrolls sideways.
    browser
        .set_window_size(390, 844)
        .await
        .expect("a phone-sized window");
    let layout = browser
        .execute(
            "window.scrollTo(0, 0); \
             const overdue = document.querySelector('[aria-label^=\"超时清单\"]').getBoundingClientRect(); \
             const map = document.querySelector('.map-panel').getBoundingClientRect(); \
             return { overdue_top: overdue.top, map_top: map.top, screen: window.innerHeight, \
                      fits: document.documentElement.scrollWidth <= window.innerWidth };",
            vec![],
        )
        .await
        .unwrap();
    let top = |name: &str| layout[name].as_f64().expect("a position");
    assert!(
        top("overdue_top") < top("screen") - 100.0,
        "the overdue list starts on the first screen: {layout}"
    );
    assert!(
        top("overdue_top") < top("map_top"),
        "the overdue list comes before the map: {layout}"
    );
    assert_eq!(layout["fits"], json!(true), "nothing scrolls sideways");
    let path = save_screenshot(&browser, "dashboard-phone.png").await;
    eprintln!("screenshot: {}", path.display());
    browser.close().await.expect("the browser closes");
}

#[tokio::test]
async fn signing_in_with_a_token_shows_the_dashboard_and_a_bad_token_the_login_page_with_the_reason(
) {
    let driver = ChromeDriver::start().await;
    let week = Week::realistic().await;
    let served = week.serve().await;
    let browser = driver.browser().await;

    // No token: the login page, nothing else.
    browser
        .goto(&served.url("/"))
        .await
        .expect("the page opens");
    wait_for(&browser, "#login:not([hidden]) #login-token").await;
    assert_eq!(
        browser
            .execute("return document.body.dataset.auth;", vec![])
            .await
            .unwrap(),
        json!("out")
    );

    // A token signed by someone else's key: back to the login page, saying why.
    let (someone_elses_key, _) =
        wangge_projections::http::auth::generate_ed25519_pem().expect("a key");
    let forged = wangge_projections::http::auth::TokenSigner::from_private_key_pem(
        &someone_elses_key,
        "a forger's key",
    )
    .unwrap()
    .issue(
        "lead-330106001-1",
        None,
        chrono::Utc::now(),
        Duration::from_secs(3600),
    )
    .unwrap();
    let field = wait_for(&browser, "#login-token").await;
    field.send_keys(&forged).await.unwrap();
    browser
        .find(Locator::Css("#login-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let reason = wait_for(&browser, "#login-reason:not([hidden])").await;
    let reason = reason.text().await.unwrap();
    assert!(
        reason.contains("登录已失效") && reason.contains("signature"),
        "{reason}"
    );
    let path = save_screenshot(&browser, "dashboard-login-refused.png").await;
    eprintln!("screenshot: {}", path.display());

    // On a phone (390 × 844) the sign-in fits the screen: nothing to scroll sideways, the
    // token field and the button inside the width.
    browser
        .set_window_size(390, 844)
        .await
        .expect("a phone-sized window");
    let fits = browser
        .execute(
            "const w = window.innerWidth; \
             const inside = s => { const r = document.querySelector(s).getBoundingClientRect(); return r.left >= 0 && r.right <= w; }; \
             return document.documentElement.scrollWidth <= w && inside('#login-token') && inside('#login-submit');",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        fits,
        json!(true),
        "the sign-in page fits a 390 px wide phone"
    );
    let path = save_screenshot(&browser, "dashboard-login-phone.png").await;
    eprintln!("screenshot: {}", path.display());
    browser
        .set_window_size(1600, 1250)
        .await
        .expect("back to a desktop window");

    // The district lead of 翠苑街道 pastes a valid token: the dashboard, with who they are.
    let lead = support::token("lead-330106001-1", None);
    let field = wait_for(&browser, "#login-token").await;
    field.send_keys(&lead).await.unwrap();
    browser
        .find(Locator::Css("#login-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&browser, "body[data-auth=\"in\"]").await;
    wait_for(&browser, ".tile[data-light]").await;
    let whoami = text_of(&browser, "#whoami").await;
    assert!(
        whoami.contains("lead-330106001-1")
            && whoami.contains("街道 district")
            && whoami.contains("翠苑街道"),
        "{whoami}"
    );
    // Their scope: 翠苑街道's communities only.
    // (Read in one script: the tiles are redrawn as the page settles.)
    let codes = browser
        .execute(
            "return [...document.querySelectorAll('.tile[data-light]:not([data-light=\\'none\\'])')].map(t => t.dataset.code);",
            vec![],
        )
        .await
        .unwrap();
    let codes = codes.as_array().expect("a list");
    assert!(
        !codes.is_empty(),
        "some of 翠苑街道's communities have open cases"
    );
    for code in codes {
        let code = code.as_str().unwrap_or_default();
        assert!(
            code.starts_with(DISTRICT),
            "a lit tile outside 翠苑街道: {code}"
        );
    }
    wait_for(&browser, "#live[data-state=\"open\"]").await;
    let path = save_screenshot(&browser, "dashboard-signed-in.png").await;
    eprintln!("screenshot: {}", path.display());
    assert!(
        browser.current_url().await.unwrap().fragment().is_none(),
        "the token does not stay in the address bar"
    );

    // Signing out returns to the login page.
    browser
        .find(Locator::Css("#signout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let reason = wait_for(&browser, "#login-reason:not([hidden])").await;
    assert!(reason.text().await.unwrap().contains("已退出"));
    let stored = browser
        .execute("return sessionStorage.getItem('wangge.token');", vec![])
        .await
        .unwrap();
    assert_eq!(stored, json!(null), "the token is forgotten");
    browser
        .execute(
            "document.getElementById('login-reason').hidden = true; return true;",
            vec![],
        )
        .await
        .unwrap();
    let path = save_screenshot(&browser, "dashboard-login.png").await;
    eprintln!("screenshot: {}", path.display());
    browser.close().await.expect("the browser closes");
}
