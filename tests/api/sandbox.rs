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
