//! Security from the browser's side: a form on another origin cannot act (even with the
//! right CSRF token), the CSP header is exact and the page breaks none of it, and a token
//! daemon asks for the token once and forgets the reader at logout.

use super::Browser;
use crate::api::Daemon;
use crate::run::Project;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A page on another origin (another loopback port) that serves `html` to every request;
/// stopped and joined on drop.
struct OtherOrigin {
    base: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OtherOrigin {
    fn serve(html: String) -> OtherOrigin {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                        let mut buf = [0u8; 4096];
                        let _ = conn.read(&mut buf);
                        let _ = write!(
                            conn,
                            "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{html}",
                            html.len()
                        );
                    }
                    Err(_) => crate::daemon::pause(),
                }
            }
        });
        OtherOrigin {
            base,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for OtherOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn browser_a_form_on_another_origin_is_refused_and_the_csp_holds_with_no_violation() {
    let Some(b) = Browser::start("UTC") else {
        return;
    };
    let project = Project::new();
    project.write("slow.dig", "+wait:\n  sh>: sleep 57\n");
    let d = Daemon::start(&project, &[]);
    let id = crate::ui::start(&d, "slow", "2026-01-05");
    b.goto(&format!("{}/ui/confirm/kill?attempt={id}", d.base));
    // The exact header, as the browser received it.
    let csp = b.js_async(
        "var done = arguments[0]; fetch(location.href).then(function (r) { \
         done(r.headers.get('content-security-policy')); }, function (e) { done(String(e)); })",
    );
    assert_eq!(csp, crate::ui::CSP);
    assert_eq!(super::pages::csp_violations(&b), Vec::<String>::new());
    // The check sees a violation when there is one: an inline style the CSP refuses.
    b.js("document.body.setAttribute('style', 'color: red')");
    let seen = super::pages::csp_violations(&b);
    assert!(
        seen.iter().any(|v| v.contains("style-src")),
        "a refused inline style is reported: {seen:?}"
    );

    // The real token of this browser (its cookie is SameSite=Strict but the other page is on
    // the same site), in a form served from another port.
    let csrf = b.attr("form.confirm input[name=csrf]", "value");
    let evil = OtherOrigin::serve(format!(
        "<!doctype html><title>elsewhere</title><form method=post action='{}/ui/actions/kill'>\
         <input type=hidden name=csrf value='{csrf}'><input type=hidden name=attempt value='{id}'>\
         <button id=go>win a prize</button></form>",
        d.base
    ));
    b.goto(&format!("{}/", evil.base));
    assert_eq!(b.run(b.c().title()).unwrap(), "elsewhere");
    b.click("#go");
    b.wait_for("the daemon's answer", |b| {
        b.url().as_str().starts_with(&d.base)
    });
    assert!(
        b.text("body")
            .contains("cross-origin form posts are refused"),
        "{}",
        b.text("body")
    );
    assert_eq!(
        d.get(&format!("/api/attempts/{id}")).1["done"],
        false,
        "nothing was killed"
    );
    let db = project.path().join(".spade/spade.db");
    assert_eq!(
        crate::daemon::rows(&db, "SELECT count(*) FROM audit"),
        vec![vec!["0".to_owned()]]
    );
}

#[test]
fn browser_token_login_and_logout() {
    let Some(b) = Browser::start("UTC") else {
        return;
    };
    let project = Project::new();
    project.write("wf.dig", "+a:\n  echo>: hi\n");
    project.write("token", "t0ken-for-the-browser\n");
    project.write("spade.toml", "api_token_file = \"token\"\n");
    let d = Daemon::start(&project, &["--config", "spade.toml"]);
    b.goto(&format!("{}/ui/workflows", d.base));
    b.wait_for("the login page", |b| b.path() == "/ui/login");
    b.screenshot("login");
    b.fill("#token", "wrong");
    b.click("form.login button[type=submit]");
    b.wait_for("the refusal", |b| b.path() == "/ui/login");
    assert!(b.count("#token") == 1 || b.text("body").contains("token"));
    b.goto(&format!("{}/ui/login?next=%2Fui%2Fworkflows", d.base));
    b.fill("#token", "t0ken-for-the-browser");
    b.click("form.login button[type=submit]");
    b.wait_for("the workflows page", |b| b.path() == "/ui/workflows");
    assert!(b.text("table.workflows").contains("wf"));
    let cookies = b.run(b.c().get_all_cookies()).unwrap();
    let session = cookies
        .iter()
        .find(|c| c.name() == "spade_session")
        .expect("a session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert!(!session.value().contains("t0ken"));
    assert_eq!(
        b.js("return document.cookie.indexOf('spade_session') < 0"),
        true,
        "the page's script cannot read it"
    );
    b.click("form.logout button");
    b.goto(&format!("{}/ui/workflows", d.base));
    b.wait_for("the login page again", |b| b.path() == "/ui/login");
}
