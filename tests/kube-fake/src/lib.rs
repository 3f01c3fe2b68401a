//! A fake Kubernetes API server for tests, faithful enough for real `kubectl`: legacy
//! discovery, namespaces/pods/secrets/configmaps/deployments with get, list (paged with
//! opaque continue tokens), watch (chunked, streamed as the store changes), create, update,
//! merge/JSON patch, delete (namespaces cascade), deletecollection and `dryRun=All`;
//! server-side Table printing for `kubectl get` (also in watches); `metav1.Status` errors; and
//! `pods/exec` over WebSocket (`v5.channel.k8s.io`/`v4.channel.k8s.io`) with a tiny command
//! interpreter. HTTPS only, with its own CA; one random bearer token; every request logged.
//!
//! Not served: protobuf (JSON is always answered), aggregated discovery (answered with legacy
//! JSON, which kubectl accepts as a fallback), OpenAPI (404: `kubectl apply`/`explain` and
//! client-side validation need `--validate=false`), SPDY exec, server-side apply.
//!
//! Layout: `server` (HTTP, routing, REST verbs), `store` (objects, resourceVersion, history,
//! watch feed), `table` (server-side printing), `exec` + `ws` (exec sessions and the
//! WebSocket codec), `resources` (types and discovery), `patch`, `status`, `time`.

mod exec;
mod patch;
mod resources;
mod server;
mod status;
mod store;
mod table;
mod time;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use base64::Engine as _;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::server::Shared;
use crate::store::{Store, Write};

/// One request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// `GET`, `POST`...
    pub method: String,
    /// URL path.
    pub path: String,
    /// Raw (still encoded) query string, empty when none.
    pub query: String,
    /// `Impersonate-User`.
    pub impersonate_user: Option<String>,
    /// Every `Impersonate-Group`, in order.
    pub impersonate_groups: Vec<String>,
    /// `"present"` or `"absent"`: the Authorization header, never its value.
    pub authorization: &'static str,
    /// `Accept`, to tell Table from JSON requests.
    pub accept: Option<String>,
    /// The response status (101 for exec upgrades, 200 for watches); 0 while still being
    /// answered.
    pub status: u16,
}

/// A running fake API server. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeKube {
    /// Store, token and request log, shared with the server.
    shared: Arc<Shared>,
    /// `https://127.0.0.1:PORT`.
    url: String,
    /// Holds `ca.pem` for the server's life.
    _dir: tempfile::TempDir,
    /// The CA certificate clients must trust.
    ca_path: PathBuf,
    /// Tells the accept loop to stop.
    shutdown: Option<oneshot::Sender<()>>,
    /// The runtime thread, joined on drop.
    thread: Option<JoinHandle<()>>,
}

impl FakeKube {
    /// Starts the server on `127.0.0.1` with a free port, a fresh CA and token, and the seeded
    /// objects. Panics if it cannot (this is test scaffolding).
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir for the fake's CA");
        let (tls, ca_pem, client) = tls_config().expect("TLS set-up for the fake API server");
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca_pem).expect("writing the fake's CA certificate");
        std::fs::write(dir.path().join("client.crt"), client.0).expect("client certificate");
        std::fs::write(dir.path().join("client.key"), client.1).expect("client key");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let address = listener.local_addr().expect("listener address").to_string();
        let token = random_token();
        let shared = Arc::new(Shared {
            store: Store::default(),
            token,
            log: Mutex::new(Vec::new()),
            forbidden_users: Mutex::new(Vec::new()),
            address: address.clone(),
        });
        seed(&shared.store);
        let (shutdown, stop) = oneshot::channel();
        let serving = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fake-kube".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("fake-kube-worker")
                    .enable_all()
                    .build()
                    .expect("tokio runtime for the fake API server");
                rt.block_on(serve(listener, tls, serving, stop));
            })
            .expect("spawning the fake API server thread");
        FakeKube {
            shared,
            url: format!("https://{address}"),
            _dir: dir,
            ca_path,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// PEM file of the CA that signed the server certificate.
    pub fn ca_pem(&self) -> &Path {
        &self.ca_path
    }

    /// A client certificate (PEM file) the server accepts instead of the token.
    pub fn client_cert(&self) -> PathBuf {
        self._dir.path().join("client.crt")
    }

    /// Its private key (PEM file).
    pub fn client_key(&self) -> PathBuf {
        self._dir.path().join("client.key")
    }

    /// The only bearer token accepted.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Logged> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Writes `dir/kubeconfig` pointing straight at the fake (context `fake`, namespace
    /// `default`, the token as a bearer token) and returns its path.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        // JSON is valid YAML, and kubeconfig files are read as YAML.
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {
                "server": self.url,
                "certificate-authority": self.ca_path,
            }}],
            "users": [{"name": "fake", "user": {"token": self.shared.token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}],
            "current-context": "fake",
        });
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(&config).unwrap_or_default(),
        )
        .expect("writing the kubeconfig");
        path
    }

    /// Creates `n` objects of `kind` (plural, singular, kind or short name: `configmaps`,
    /// `ConfigMap`, `cm`) in `namespace` (created if missing), named `<singular>-00000`... .
    pub fn seed_many(&self, namespace: &str, kind: &str, n: usize) {
        let def = resources::lookup(kind).unwrap_or_else(|| panic!("unknown kind {kind:?}"));
        let store = &self.shared.store;
        let ns_def = resources::lookup("namespaces").expect("namespaces are served");
        if def.namespaced && store.get(ns_def, "", namespace).is_none() {
            let _ = store.create(
                ns_def,
                "",
                json!({"metadata": {"name": namespace}}),
                Write::Commit,
            );
        }
        for i in 0..n {
            let mut o = sample(def.plural, i);
            o["metadata"]["name"] = json!(format!("{}-{i:05}", def.singular));
            if def.namespaced {
                o["metadata"]["namespace"] = json!(namespace);
            }
            store
                .create(def, namespace, o, Write::Commit)
                .unwrap_or_else(|e| panic!("seeding {kind} #{i}: {}", e.body));
        }
    }

    /// Makes every request that impersonates `user` (`Impersonate-User`) fail with 403
    /// Forbidden, as RBAC would.
    pub fn forbid_user(&self, user: &str) {
        self.shared
            .forbidden_users
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(user.to_string());
    }

    /// The stored object, or `None` (`kind` as for [`FakeKube::seed_many`]; `namespace`
    /// ignored for namespaces).
    pub fn object(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let def = resources::lookup(kind)?;
        self.shared.store.get(def, namespace, name)
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Accepts connections until told to stop; each is TLS, then HTTP/1.1 with upgrades (exec).
async fn serve(
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => return,
            a = listener.accept() => a,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            // The verifier only lets through certificates the CA signed.
            let client_cert = stream
                .get_ref()
                .1
                .peer_certificates()
                .is_some_and(|certs| !certs.is_empty());
            let service = service_fn(move |req| server::handle(shared.clone(), req, client_cert));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

/// A client certificate and key, PEM.
type ClientPem = (String, String);

/// A CA, a server certificate for 127.0.0.1/localhost signed by it, a client certificate it
/// signed too, and the rustls config (client certificates verified against the CA, optional).
fn tls_config() -> Result<(Arc<rustls::ServerConfig>, String, ClientPem), Box<dyn std::error::Error>>
{
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sluice-fake-kube-ca");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate()?)?;
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kube-apiserver");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;
    let chain = vec![cert.der().clone()];
    let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())?;
    let mut client_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    client_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "system:sluice-broker");
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = rcgen::KeyPair::generate()?;
    let client_cert = client_params.signed_by(&client_key, &ca)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone())?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key_der)?;
    // HTTP/1.1 only: exec upgrades need it, and kubectl falls back from h2 happily.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((
        Arc::new(config),
        ca.pem(),
        (client_cert.pem(), client_key.serialize_pem()),
    ))
}

fn random_token() -> String {
    let bytes: [u8; 24] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A plausible object body for [`FakeKube::seed_many`].
fn sample(plural: &str, i: usize) -> Value {
    match plural {
        "configmaps" => json!({"metadata": {}, "data": {"index": i.to_string()}}),
        "secrets" => {
            json!({"metadata": {}, "type": "Opaque", "data": {"index": base64::engine::general_purpose::STANDARD.encode(i.to_string())}})
        }
        "pods" => pod_body("app", "Running"),
        "deployments" => deployment_body("app", 1),
        _ => json!({"metadata": {}}),
    }
}

fn pod_body(container: &str, phase: &str) -> Value {
    let running = phase == "Running";
    json!({
        "metadata": {"labels": {"app": container}},
        "spec": {
            "containers": [{"name": container, "image": "registry.example/app:1.0"}],
            "nodeName": "node-1",
            "restartPolicy": "Always"
        },
        "status": {
            "phase": phase,
            "podIP": "10.0.0.10",
            "containerStatuses": [{
                "name": container,
                "ready": running,
                "restartCount": 0,
                "image": "registry.example/app:1.0",
                // The API server always sets these (the Python client requires them).
                "imageID": "registry.example/app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                "containerID": "containerd://0000",
                "started": running,
                "state": if running { json!({"running": {"startedAt": time::rfc3339(time::now_secs())}}) } else { json!({"waiting": {"reason": "ContainerCreating"}}) }
            }]
        }
    })
}

fn deployment_body(app: &str, replicas: i64) -> Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": app, "image": "registry.example/app:1.0"}]}
            }
        },
        "status": {"replicas": replicas, "readyReplicas": replicas, "updatedReplicas": replicas, "availableReplicas": replicas}
    })
}

/// The initial objects every fake starts with.
fn seed(store: &Store) {
    let def = |k: &str| resources::lookup(k).expect("seeded kinds are served");
    let put = |kind: &str, ns: &str, mut o: Value, name: &str| {
        o["metadata"]["name"] = json!(name);
        if !ns.is_empty() {
            o["metadata"]["namespace"] = json!(ns);
        }
        if let Err(e) = store.create(def(kind), ns, o, Write::Commit) {
            panic!("seeding {kind} {name}: {}", e.body);
        }
    };
    for ns in ["default", "kube-system", "prod"] {
        put("namespaces", "", json!({"metadata": {}}), ns);
    }
    put("pods", "prod", pod_body("web", "Running"), "web-1");
    put("pods", "prod", pod_body("debug", "Running"), "debug-1");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let data = json!({"username": b64("app"), "password": b64("s3cr3t-VALUE")});
    let last_applied = json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "db-creds", "namespace": "prod", "annotations": {}},
        "data": data,
    });
    put(
        "secrets",
        "prod",
        json!({
            "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": format!("{last_applied}\n")}},
            "type": "Opaque",
            "data": data,
        }),
        "db-creds",
    );
    put(
        "configmaps",
        "prod",
        json!({"metadata": {}, "data": {"LOG_LEVEL": "info", "FEATURE_X": "on"}}),
        "settings",
    );
    put("deployments", "prod", deployment_body("web", 2), "web");
}
