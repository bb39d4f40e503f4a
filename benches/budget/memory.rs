//! Section 6: peak RSS and store size, each scenario in a child process.

use crate::common::mib;
use crate::opts::Opts;
use serde_json::{json, Value};

pub(crate) fn child(args: &[&str]) -> Value {
    let exe = std::env::current_exe().expect("current exe");
    let out = std::process::Command::new(exe)
        .arg("--child")
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("child runs");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| json!({ "error": format!("child {args:?} failed: {}", out.status) }))
}

fn hwm_mib(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_u64)
        .map(|x| format!("{:.1}", mib(x, false)))
        .unwrap_or_else(|| "?".into())
}

pub(crate) async fn section_memory(o: &Opts) {
    println!(
        "\n## 6. Memory: peak RSS (VmHWM) of a child process per scenario; store size on disk"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let dir_s = dir.display().to_string();
    let idle = child(&["idle"]);
    println!(
        "readbot idle (empty store, fake in process):            peak RSS {} MiB",
        hwm_mib(&idle, "hwm_kib")
    );
    let fill = child(&[
        "fill",
        &o.notices.to_string(),
        &dir_s,
        &o.concurrency.to_string(),
    ]);
    println!(
        "store {} notices ({} writers, each flushed): {:.1} s, peak RSS {} MiB, sled size_on_disk {:.1} MiB, folder {:.1} MiB",
        o.notices,
        o.concurrency,
        fill.get("secs").and_then(Value::as_f64).unwrap_or(0.0),
        hwm_mib(&fill, "hwm_kib"),
        mib(fill.get("size_on_disk").and_then(Value::as_u64).unwrap_or(0), true),
        mib(fill.get("dir_bytes").and_then(Value::as_u64).unwrap_or(0), true),
    );
    let serve = child(&["serve-stored", &dir_s]);
    println!(
        "readbot serving with those {} notices stored: peak RSS after open {} MiB, after listing a group {} MiB, after a 500-member summary {} MiB",
        o.notices,
        hwm_mib(&serve, "hwm_open_kib"),
        hwm_mib(&serve, "hwm_list_kib"),
        hwm_mib(&serve, "hwm_served_kib"),
    );
    println!(
        "  then a scan of all notices (Store::notice_count = {}, not on any serving path): peak RSS {} MiB",
        serve.get("count").and_then(Value::as_u64).unwrap_or(0),
        hwm_mib(&serve, "hwm_kib"),
    );
    let big = o.sizes.iter().copied().max().unwrap_or(10_000).max(1000);
    let sum = child(&["summary", &big.to_string()]);
    println!(
        "{big}-member summary (fake with {big} members in the same process): peak RSS before {} MiB, after cold + warm summary {} MiB",
        hwm_mib(&sum, "hwm_before_kib"),
        hwm_mib(&sum, "hwm_kib"),
    );
    if let Some(e) = [&idle, &fill, &serve, &sum]
        .iter()
        .find_map(|v| v.get("error"))
    {
        println!("  ! {e}");
    }
}
