//! `readbot sandbox --once` runs the whole demo end to end.

#[tokio::test]
async fn sandbox_demo_completes() {
    let tmp = tempfile::tempdir().unwrap();
    readbot::sandbox::run(readbot::sandbox::SandboxOptions {
        listen: "127.0.0.1:0".into(),
        data_dir: tmp.path().join("sandbox"),
        once: true,
    })
    .await
    .expect("sandbox demo runs");
}

/// A writer the test can read while the sandbox writes.
#[derive(Clone, Default)]
struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The sandbox serves the notice page on its own address: the demo's summary
/// carries the "full list" link, and the link opens the page while the
/// sandbox runs (even when asked for port 0).
#[tokio::test]
async fn the_sandbox_summary_links_to_its_notice_page() {
    let tmp = tempfile::tempdir().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let out = Shared::default();
    let sandbox = tokio::spawn(readbot::sandbox::run_with(
        readbot::sandbox::SandboxOptions {
            listen: "127.0.0.1:0".into(),
            data_dir: tmp.path().join("sandbox"),
            once: false,
        },
        rx,
        readbot::sandbox::Out::new(Box::new(out.clone())),
        false,
    ));
    let marker = "[完整名单](";
    let mut url = None;
    for _ in 0..600 {
        let text = String::from_utf8_lossy(&out.0.lock().unwrap()).into_owned();
        if let Some(at) = text.find(marker) {
            let rest = &text[at + marker.len()..];
            url = rest.find(')').map(|end| rest[..end].to_owned());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let url = url.expect("the demo's summary carries the full-list link");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(
        !url.starts_with("http://127.0.0.1:0/"),
        "a real port: {url}"
    );
    let page = reqwest::get(&url).await.expect("the page answers");
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("周五团建通知"), "the demo notice");
    assert!(html.contains("曾乐"), "an unread member");
    drop(tx); // end of input stops the sandbox
    sandbox
        .await
        .expect("sandbox task")
        .expect("sandbox stops cleanly");
}
