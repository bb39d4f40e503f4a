//! The deployment artifacts in `deploy/`: valid YAML, consistent with each
//! other and with readbot (routes, port, data folder, settings), and the
//! systemd unit accepted by `systemd-analyze verify` where that tool exists.
//! Docker itself is not run here (no engine in CI); the Dockerfile is checked
//! for the properties the docs promise.

use serde::Deserialize;
use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every YAML document in `text`.
fn yaml_docs(name: &str, text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{name} is not valid YAML: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for part in path.split('.') {
        cur = match part.parse::<usize>() {
            Ok(i) => cur.get(i),
            Err(_) => cur.get(part),
        }
        .unwrap_or_else(|| panic!("missing {path} (at {part}) in {v:?}"));
    }
    cur
}

fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    get(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string"))
}

/// Environment names readbot reads.
fn known_env() -> BTreeSet<&'static str> {
    let mut k: BTreeSet<&str> = readbot::config::ENV_KEYS
        .iter()
        .map(|(e, _, _)| *e)
        .collect();
    k.extend(["RUST_LOG", "READBOT_LOG_FORMAT", "READBOT_URL"]);
    k
}

fn listen_port(listen: &str) -> u16 {
    listen
        .parse::<std::net::SocketAddr>()
        .expect("listen address")
        .port()
}

#[test]
fn kubernetes_manifests_are_valid_and_consistent() {
    let dir = root().join("deploy/kubernetes");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("deploy/kubernetes")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml"))
        .collect();
    files.sort();
    let mut by_kind: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut kustomization = None;
    for f in &files {
        let text = read(&format!("deploy/kubernetes/{f}"));
        for doc in yaml_docs(f, &text) {
            let kind = s(&doc, "kind").to_string();
            if kind == "Kustomization" {
                kustomization = Some(doc);
                continue;
            }
            assert!(!s(&doc, "apiVersion").is_empty(), "{f}");
            assert!(!s(&doc, "metadata.name").is_empty(), "{f}");
            by_kind.entry(kind).or_default().push(doc);
        }
    }
    // The kustomization lists every manifest.
    let k = kustomization.expect("kustomization.yaml");
    assert_lists_every_manifest(&k, &files);

    let one = |kind: &str| -> &Value {
        let v = by_kind.get(kind).unwrap_or_else(|| panic!("no {kind}"));
        assert_eq!(v.len(), 1, "one {kind}");
        &v[0]
    };
    let sts = one("StatefulSet");
    let cm = one("ConfigMap");
    let secret = one("Secret");
    let ingress = one("Ingress");
    let services = by_kind.get("Service").expect("services");

    // sled is single-writer.
    assert_eq!(get(sts, "spec.replicas").as_u64(), Some(1));
    let pod_labels = get(sts, "spec.template.metadata.labels");
    assert_eq!(get(sts, "spec.selector.matchLabels"), pod_labels);
    let headless = s(sts, "spec.serviceName");
    let svc = |name: &str| {
        services
            .iter()
            .find(|v| s(v, "metadata.name") == name)
            .unwrap_or_else(|| panic!("no Service {name}"))
    };
    assert_eq!(s(svc(headless), "spec.clusterIP"), "None");
    for v in services {
        assert_eq!(
            get(v, "spec.selector"),
            pod_labels,
            "Service selects the pod"
        );
    }

    // Settings: known names; listen port and data folder agree with the pod.
    let data = get(cm, "data").as_mapping().expect("ConfigMap data");
    let known = known_env();
    for key in data.keys().chain(
        get(secret, "stringData")
            .as_mapping()
            .expect("stringData")
            .keys(),
    ) {
        let key = key.as_str().expect("key");
        assert!(known.contains(key), "unknown setting {key}");
    }
    let token = s(secret, "stringData.READBOT_API_TOKEN");
    assert!(token.len() >= 16, "placeholder token must pass validation");
    let port = listen_port(s(cm, "data.READBOT_LISTEN"));
    let data_dir = s(cm, "data.READBOT_DATA_DIR");

    let c = get(sts, "spec.template.spec.containers.0");
    assert_eq!(s(c, "ports.0.name"), "http");
    assert_eq!(
        get(c, "ports.0.containerPort").as_u64(),
        Some(u64::from(port))
    );
    assert_eq!(s(c, "livenessProbe.httpGet.path"), "/healthz");
    assert_eq!(s(c, "readinessProbe.httpGet.path"), "/readyz");
    assert_eq!(s(c, "startupProbe.httpGet.path"), "/healthz");
    assert_eq!(s(c, "envFrom.0.configMapRef.name"), s(cm, "metadata.name"));
    assert_eq!(s(c, "envFrom.1.secretRef.name"), s(secret, "metadata.name"));
    assert_eq!(s(c, "volumeMounts.0.mountPath"), data_dir);
    assert_eq!(
        s(c, "volumeMounts.0.name"),
        s(sts, "spec.volumeClaimTemplates.0.metadata.name")
    );
    assert_eq!(
        get(c, "securityContext.readOnlyRootFilesystem").as_bool(),
        Some(true)
    );
    assert_eq!(
        get(sts, "spec.template.spec.securityContext.runAsNonRoot").as_bool(),
        Some(true)
    );
    let annotations = get(sts, "spec.template.metadata.annotations");
    assert_eq!(
        annotations
            .get("prometheus.io/path")
            .and_then(Value::as_str),
        Some("/metrics")
    );

    // Only the callback is public.
    let paths = get(ingress, "spec.rules.0.http.paths")
        .as_sequence()
        .expect("paths");
    assert_eq!(paths.len(), 1);
    assert_eq!(s(&paths[0], "path"), "/dingtalk/callback");
    assert_eq!(s(&paths[0], "backend.service.name"), "readbot");
    svc("readbot");
}

#[test]
fn kustomize_renders_the_manifests_where_kubectl_exists() {
    let out = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(root().join("deploy/kubernetes"))
        .output();
    let Ok(out) = out else {
        eprintln!("kubectl not installed: kustomize rendering not checked");
        return;
    };
    assert!(
        out.status.success(),
        "kubectl kustomize failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let docs = yaml_docs("kustomize output", &text);
    assert_eq!(docs.len(), 6, "{text}");
    assert!(
        text.contains("image: registry.example.com/readbot:0.1.0"),
        "{text}"
    );
}

#[test]
fn compose_file_is_valid_and_matches_the_image() {
    let text = read("deploy/compose.yaml");
    let docs = yaml_docs("compose.yaml", &text);
    assert_eq!(docs.len(), 1);
    let rb = get(&docs[0], "services.readbot");
    // Paths are relative to deploy/.
    let context = root().join("deploy").join(s(rb, "build.context"));
    assert!(context.join(s(rb, "build.dockerfile")).is_file());
    assert!(context.join("Cargo.toml").is_file());
    let env = get(rb, "environment").as_mapping().expect("environment");
    let known = known_env();
    for key in env.keys() {
        let key = key.as_str().expect("key");
        assert!(known.contains(key), "unknown setting {key}");
    }
    let volume = s(rb, "volumes.0");
    assert!(volume.ends_with(":/var/lib/readbot"), "{volume}");
    let test: Vec<&str> = get(rb, "healthcheck.test")
        .as_sequence()
        .expect("healthcheck")
        .iter()
        .map(|v| v.as_str().expect("arg"))
        .collect();
    assert_eq!(test[..3], ["CMD", "/usr/local/bin/readbot", "health"]);
    assert_eq!(s(rb, "ports.0"), "127.0.0.1:8080:8080");
    assert_eq!(get(rb, "read_only").as_bool(), Some(true));
}

/// `(instruction, arguments)` of a Dockerfile, continuation lines joined.
fn dockerfile() -> Vec<(String, String)> {
    let text = read("deploy/Dockerfile");
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => {
                cur.push_str(part);
                cur.push(' ');
            }
            None => {
                cur.push_str(t);
                let (ins, args) = cur.trim().split_once(' ').unwrap_or((cur.trim(), ""));
                out.push((ins.to_uppercase(), args.trim().to_string()));
                cur.clear();
            }
        }
    }
    out
}

#[test]
fn dockerfile_is_multi_stage_non_root_with_volume_and_healthcheck() {
    let ins = dockerfile();
    let stages: Vec<usize> = ins
        .iter()
        .enumerate()
        .filter(|(_, (i, _))| i == "FROM")
        .map(|(n, _)| n)
        .collect();
    assert!(stages.len() >= 2, "multi-stage");
    let runtime = &ins[*stages.last().expect("stage")..];
    let last = |name: &str| {
        runtime
            .iter()
            .rev()
            .find(|(i, _)| i == name)
            .map(|(_, a)| a.as_str())
            .unwrap_or_else(|| panic!("runtime stage lacks {name}"))
    };
    let user = last("USER");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "{user}"
    );
    let env = last("ENV");
    let setting = |key: &str| {
        env.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("ENV lacks {key}"))
    };
    let data_dir = setting("READBOT_DATA_DIR");
    assert!(last("VOLUME").contains(data_dir));
    assert_eq!(
        last("EXPOSE").parse::<u16>().expect("port"),
        listen_port(setting("READBOT_LISTEN"))
    );
    let hc = last("HEALTHCHECK");
    let cmd = hc.split_once("CMD").expect("HEALTHCHECK CMD").1.trim();
    let cmd: Vec<String> = serde_json::from_str(cmd).expect("exec-form CMD");
    assert_eq!(cmd[0], "/usr/local/bin/readbot");
    // The health check is a real subcommand.
    let mut help = std::process::Command::new(env!("CARGO_BIN_EXE_readbot"));
    help.args(&cmd[1..]).arg("--help").env_clear();
    assert!(help.output().expect("runs").status.success(), "{cmd:?}");
    assert!(last("ENTRYPOINT").contains("/usr/local/bin/readbot"));
    assert!(last("CMD").contains("serve"));

    // Dependencies are built before the sources are copied.
    let build = &ins[..*stages.last().expect("stage")];
    let first_src = build
        .iter()
        .position(|(i, a)| i == "COPY" && a.starts_with("src"))
        .expect("COPY src");
    let manifest = build
        .iter()
        .position(|(i, a)| i == "COPY" && a.contains("Cargo.toml") && a.contains("Cargo.lock"))
        .expect("COPY Cargo.toml Cargo.lock");
    assert!(manifest < first_src);
    assert!(build[manifest..first_src]
        .iter()
        .any(|(i, a)| i == "RUN" && a.contains("cargo build --release --locked")));

    // Every copied source exists and passes the .dockerignore.
    let ignore = read("deploy/Dockerfile.dockerignore");
    let included: BTreeSet<&str> = ignore
        .lines()
        .filter_map(|l| l.trim().strip_prefix('!'))
        .collect();
    for (_, args) in build.iter().filter(|(i, _)| i == "COPY") {
        let mut parts: Vec<&str> = args.split_whitespace().collect();
        parts.pop(); // destination
        for src in parts.iter().filter(|p| !p.starts_with("--")) {
            assert!(root().join(src).exists(), "COPY source {src} missing");
            assert!(
                included.contains(src),
                "{src} is excluded by the .dockerignore"
            );
        }
    }
}

#[test]
fn dockerfile_dependency_stubs_cover_every_declared_target() {
    let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).expect("Cargo.toml");
    let docker = read("deploy/Dockerfile");
    for kind in ["bench", "test", "example", "bin"] {
        for t in manifest
            .get(kind)
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = t.get("name").and_then(toml::Value::as_str).unwrap_or("");
            if kind == "bin" && name == "readbot" {
                continue;
            }
            let path = t
                .get("path")
                .and_then(toml::Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    // Cargo's default folders: benches/, tests/, examples/, src/bin/.
                    let dir = match kind {
                        "bench" => "benches",
                        "bin" => "src/bin",
                        other => return format!("{other}s/{name}.rs"),
                    };
                    format!("{dir}/{name}.rs")
                });
            assert!(
                docker.contains(&path),
                "Cargo.toml declares [[{kind}]] {name} at {path}: the dependency layer of deploy/Dockerfile must stub it, or `docker build` fails"
            );
        }
    }
}

#[test]
fn systemd_unit_is_hardened_and_passes_verify() {
    let unit = read("deploy/systemd/readbot.service");
    for want in [
        "User=readbot",
        "StateDirectory=readbot",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "Restart=on-failure",
        "CapabilityBoundingSet=\n",
        "ExecStart=/usr/local/bin/readbot --config /etc/readbot/readbot.toml serve",
        "Environment=READBOT_DATA_DIR=/var/lib/readbot",
    ] {
        assert!(unit.contains(want), "unit lacks {want:?}");
    }
    let sysusers = read("deploy/systemd/readbot.sysusers");
    assert!(sysusers.lines().any(|l| l.starts_with("u readbot ")));
    for line in read("deploy/systemd/readbot.env.example")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let key = line.split_once('=').expect("KEY=value").0;
        assert!(known_env().contains(key), "unknown setting {key}");
    }

    // systemd-analyze verify checks syntax, directives and that ExecStart is
    // executable: point it at the binary built for this test run.
    let tmp = tempfile::tempdir().expect("tmp");
    let path: &Path = &tmp.path().join("readbot.service");
    std::fs::write(
        path,
        unit.replace("/usr/local/bin/readbot", env!("CARGO_BIN_EXE_readbot")),
    )
    .expect("write unit");
    let out = match std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(path)
        .output()
    {
        Ok(out) => out,
        Err(_) => {
            eprintln!("systemd-analyze not installed: unit not verified");
            return;
        }
    };
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "systemd-analyze verify failed: {said}"
    );
    let about_unit: Vec<&str> = said.lines().filter(|l| l.contains("readbot")).collect();
    assert!(
        about_unit.is_empty(),
        "systemd-analyze warnings: {about_unit:?}"
    );
}

#[test]
fn compose_passes_the_receive_mode_and_every_stream_setting_through() {
    let text = read("deploy/compose.yaml");
    let docs = yaml_docs("compose.yaml", &text);
    let env = get(&docs[0], "services.readbot.environment");
    assert_eq!(s(env, "READBOT_MODE"), "${READBOT_MODE:-stream}");
    for (key, _, _) in readbot::config::ENV_KEYS {
        if key.starts_with("READBOT_STREAM_") {
            assert_eq!(
                s(env, key),
                format!("${{{key}:-}}"),
                "compose.yaml passes {key} through"
            );
        }
    }
}

/// `128k` / `128KB` → bytes.
fn size_bytes(v: &str) -> usize {
    let v = v.trim().trim_end_matches(';').to_ascii_lowercase();
    let (num, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: usize = num.parse().expect("a size");
    n * match unit.trim_end_matches('b') {
        "" => 1,
        "k" => 1024,
        "m" => 1024 * 1024,
        other => panic!("unit {other}"),
    }
}

#[test]
fn proxy_snippets_forward_the_callback_to_readbot_and_allow_its_body_limit() {
    let limit = readbot::config::defaults::MAX_BODY_BYTES;
    let nginx = read("deploy/nginx.conf");
    assert!(nginx.contains("server 127.0.0.1:8080;"), "{nginx}");
    assert!(nginx.contains("location = /dingtalk/callback {"));
    assert!(nginx.contains("proxy_pass http://readbot;"));
    let body = nginx
        .lines()
        .find_map(|l| l.trim().strip_prefix("client_max_body_size"))
        .expect("client_max_body_size");
    assert!(
        size_bytes(body) > limit,
        "nginx lets readbot's own 413 through"
    );
    for t in [
        "proxy_connect_timeout",
        "proxy_read_timeout",
        "client_body_timeout",
    ] {
        assert!(nginx.contains(t), "nginx.conf sets {t}");
    }

    let caddy = read("deploy/Caddyfile");
    assert!(caddy.contains("handle /dingtalk/callback {"), "{caddy}");
    assert!(caddy.contains("reverse_proxy 127.0.0.1:8080"));
    let body = caddy
        .lines()
        .find_map(|l| l.trim().strip_prefix("max_size"))
        .expect("max_size");
    assert!(
        size_bytes(body) > limit,
        "Caddy lets readbot's own 413 through"
    );
    assert!(caddy.contains("response_header_timeout"));

    let readme = read("README.md");
    assert!(readme.contains("deploy/nginx.conf") && readme.contains("deploy/Caddyfile"));
}

/// Settings readbot reads, and `READBOT_STORE_URL` (the PostgreSQL backend's
/// setting, which the HA files are written for).
fn known_env_with_store_url() -> BTreeSet<&'static str> {
    let mut k = known_env();
    k.insert("READBOT_STORE_URL");
    k
}

#[test]
fn ha_compose_runs_two_replicas_on_postgres_behind_a_health_checked_proxy() {
    let text = read("deploy/compose.ha.yaml");
    let mut docs = yaml_docs("compose.ha.yaml", &text);
    assert_eq!(docs.len(), 1);
    docs[0].apply_merge().expect("YAML merge keys");
    let services = get(&docs[0], "services").as_mapping().expect("services");

    let pg = get(&docs[0], "services.postgres");
    assert!(
        s(pg, "image").starts_with("postgres:"),
        "the official image"
    );
    assert!(s(pg, "volumes.0").ends_with(":/var/lib/postgresql/data"));
    assert!(s(pg, "healthcheck.test.1").contains("pg_isready"));

    let replicas: Vec<&Value> = services
        .iter()
        .filter(|(name, _)| name.as_str().is_some_and(|n| n.starts_with("readbot")))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(replicas.len(), 2, "two readbot replicas");
    let known = known_env_with_store_url();
    for rb in &replicas {
        let context = root().join("deploy").join(s(rb, "build.context"));
        assert!(context.join(s(rb, "build.dockerfile")).is_file());
        assert_eq!(
            s(rb, "image"),
            "readbot:latest",
            "the image of compose.yaml"
        );
        let env = get(rb, "environment");
        for key in env.as_mapping().expect("environment").keys() {
            let key = key.as_str().expect("key");
            assert!(known.contains(key), "unknown setting {key}");
        }
        let url = s(env, "READBOT_STORE_URL");
        assert!(
            url.starts_with("postgres://readbot:") && url.ends_with("@postgres:5432/readbot"),
            "{url}"
        );
        assert_eq!(s(env, "READBOT_REPLICAS"), replicas.len().to_string());
        assert_eq!(s(rb, "depends_on.postgres.condition"), "service_healthy");
        assert!(
            rb.get("volumes").is_none(),
            "no volume: the store is PostgreSQL"
        );
        assert!(rb.get("ports").is_none(), "reached through the proxy");
        let test: Vec<&str> = get(rb, "healthcheck.test")
            .as_sequence()
            .expect("healthcheck")
            .iter()
            .map(|v| v.as_str().expect("arg"))
            .collect();
        assert_eq!(test, ["CMD", "/usr/local/bin/readbot", "health", "--ready"]);
    }

    let proxy = get(&docs[0], "services.proxy");
    assert_eq!(s(proxy, "ports.0"), "127.0.0.1:8080:8080");
    let mounted = s(proxy, "volumes.0");
    let file = mounted.split(':').next().expect("host path");
    let caddy = read(&format!("deploy/{}", file.trim_start_matches("./")));
    let upstreams = caddy
        .lines()
        .find_map(|l| l.trim().strip_prefix("reverse_proxy "))
        .expect("reverse_proxy");
    for (name, _) in services
        .iter()
        .filter(|(n, _)| n.as_str().is_some_and(|n| n.starts_with("readbot")))
    {
        let name = name.as_str().expect("name");
        assert!(upstreams.contains(&format!("{name}:8080")), "{upstreams}");
    }
    for want in [
        "lb_policy round_robin",
        "health_uri /readyz",
        "max_size 128KB",
    ] {
        assert!(caddy.contains(want), "Caddyfile.ha lacks {want}");
    }
}

#[test]
fn kubernetes_postgres_mode_is_a_two_replica_deployment_without_volume() {
    let dir = root().join("deploy/kubernetes-postgres");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("deploy/kubernetes-postgres")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml"))
        .collect();
    files.sort();
    let mut by_kind: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for f in &files {
        for doc in yaml_docs(f, &read(&format!("deploy/kubernetes-postgres/{f}"))) {
            by_kind
                .entry(s(&doc, "kind").to_string())
                .or_default()
                .push(doc);
        }
    }
    let one = |kind: &str| -> &Value {
        let v = by_kind.get(kind).unwrap_or_else(|| panic!("no {kind}"));
        assert_eq!(v.len(), 1, "one {kind}");
        &v[0]
    };
    assert_lists_every_manifest(one("Kustomization"), &files);
    assert!(
        !by_kind.contains_key("StatefulSet"),
        "sled's StatefulSet stays in deploy/kubernetes"
    );

    let deploy = one("Deployment");
    let (cm, secret, pdb, svc) = (
        one("ConfigMap"),
        one("Secret"),
        one("PodDisruptionBudget"),
        one("Service"),
    );
    assert_eq!(get(deploy, "spec.replicas").as_u64(), Some(2));
    assert_eq!(
        s(cm, "data.READBOT_REPLICAS"),
        "2",
        "READBOT_REPLICAS = replicas"
    );
    assert!(s(secret, "stringData.READBOT_STORE_URL").starts_with("postgres://"));
    let known = known_env_with_store_url();
    let keys = get(cm, "data").as_mapping().expect("data").keys().chain(
        get(secret, "stringData")
            .as_mapping()
            .expect("stringData")
            .keys(),
    );
    for key in keys {
        let key = key.as_str().expect("key");
        assert!(known.contains(key), "unknown setting {key}");
        assert_ne!(key, "READBOT_DATA_DIR", "no data folder in PostgreSQL mode");
    }

    let pod_labels = get(deploy, "spec.template.metadata.labels");
    assert_eq!(get(deploy, "spec.selector.matchLabels"), pod_labels);
    assert_eq!(get(pdb, "spec.selector.matchLabels"), pod_labels);
    assert_eq!(get(pdb, "spec.minAvailable").as_u64(), Some(1));
    assert_eq!(get(svc, "spec.selector"), pod_labels);
    assert_eq!(
        s(
            one("Ingress"),
            "spec.rules.0.http.paths.0.backend.service.name"
        ),
        s(svc, "metadata.name")
    );

    let spec = get(deploy, "spec.template.spec");
    assert!(spec.get("volumes").is_none(), "no volume");
    let c = get(spec, "containers.0");
    assert!(c.get("volumeMounts").is_none(), "no volume");
    assert_eq!(s(c, "livenessProbe.httpGet.path"), "/healthz");
    assert_eq!(s(c, "readinessProbe.httpGet.path"), "/readyz");
    assert_eq!(s(c, "startupProbe.httpGet.path"), "/healthz");
    assert_eq!(s(c, "envFrom.0.configMapRef.name"), s(cm, "metadata.name"));
    assert_eq!(s(c, "envFrom.1.secretRef.name"), s(secret, "metadata.name"));
    assert_eq!(
        get(c, "ports.0.containerPort").as_u64(),
        Some(u64::from(listen_port(s(cm, "data.READBOT_LISTEN"))))
    );
    assert_eq!(
        get(c, "securityContext.readOnlyRootFilesystem").as_bool(),
        Some(true)
    );
    assert_eq!(
        get(deploy, "spec.strategy.rollingUpdate.maxUnavailable").as_u64(),
        Some(0)
    );
}

/// The kustomization's `resources` are exactly the folder's other files.
fn assert_lists_every_manifest(kustomization: &Value, files: &[String]) {
    let listed: BTreeSet<&str> = get(kustomization, "resources")
        .as_sequence()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("resource"))
        .collect();
    let present: BTreeSet<&str> = files
        .iter()
        .map(String::as_str)
        .filter(|f| *f != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present, "kustomization resources vs files");
}
