//! kube-rs against the in-memory API server on 127.0.0.1 (no namespaces touched).

use std::time::Duration;

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Config};
use lab::apiserver::{ApiServer, ApiServerConfig, kubeconfig_yaml};
use serde_json::json;

/// Starts a server on an ephemeral port and returns a client for it.
async fn start() -> Client {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let server = ApiServer::new(ApiServerConfig::default());
    tokio::spawn(server.serve(listener));
    let yaml = kubeconfig_yaml(&format!("http://{addr}"), "lab-test");
    let kubeconfig = Kubeconfig::from_yaml(&yaml).expect("kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config from kubeconfig");
    Client::try_from(config).expect("client")
}

fn pod(name: &str, node: Option<&str>) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .expect("valid pod")
}

#[tokio::test]
async fn create_get_list_patch_delete() {
    let client = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let created = pods
        .create(&PostParams::default(), &pod("a", None))
        .await
        .expect("create");
    assert_eq!(
        created.status.and_then(|s| s.phase).as_deref(),
        Some("Pending")
    );
    assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
    pods.create(&PostParams::default(), &pod("b", None))
        .await
        .expect("create b");
    let again = pods.create(&PostParams::default(), &pod("a", None)).await;
    assert!(
        matches!(again, Err(kube::Error::Api(ref e)) if e.code == 409),
        "{again:?}"
    );

    let listed = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 2);
    let none = pods
        .list(&ListParams::default().labels("app!=web"))
        .await
        .expect("list");
    assert!(none.items.is_empty());
    let by_name = pods
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .expect("list");
    assert_eq!(by_name.items.len(), 1);

    let status = json!({"status": {"phase": "Running", "podIP": "10.42.0.7"}});
    let patched = pods
        .patch_status("a", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("patch status");
    assert_eq!(
        patched.status.as_ref().and_then(|s| s.pod_ip.as_deref()),
        Some("10.42.0.7")
    );
    // Status written through the main resource is ignored.
    let sneaky = json!({"metadata": {"labels": {"x": "y"}}, "status": {"phase": "Failed"}});
    let patched = pods
        .patch("a", &PatchParams::default(), &Patch::Merge(&sneaky))
        .await
        .expect("patch");
    assert_eq!(
        patched.status.and_then(|s| s.phase).as_deref(),
        Some("Running")
    );
    assert_eq!(
        patched
            .metadata
            .labels
            .and_then(|l| l.get("x").cloned())
            .as_deref(),
        Some("y")
    );

    pods.delete("a", &DeleteParams::default())
        .await
        .expect("delete");
    let gone = pods.get("a").await;
    assert!(
        matches!(gone, Err(kube::Error::Api(ref e)) if e.code == 404),
        "{gone:?}"
    );
}

#[tokio::test]
async fn stale_update_conflicts() {
    let client = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"k": "1"}})).expect("cm");
    let first = cms
        .create(&PostParams::default(), &cm)
        .await
        .expect("create");
    let mut newer = first.clone();
    newer.data = Some([("k".to_string(), "2".to_string())].into());
    cms.replace("c", &PostParams::default(), &newer)
        .await
        .expect("fresh update");
    let stale = cms.replace("c", &PostParams::default(), &first).await;
    assert!(
        matches!(stale, Err(kube::Error::Api(ref e)) if e.code == 409 && e.reason == "Conflict"),
        "{stale:?}"
    );
}

#[tokio::test]
async fn nodes_get_pod_cidrs_and_bound_pods_delete_gracefully() {
    let client = start().await;
    let nodes: Api<Node> = Api::all(client.clone());
    for (i, name) in ["node-1", "node-2"].iter().enumerate() {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": name}})).expect("node");
        let node = nodes
            .create(&PostParams::default(), &node)
            .await
            .expect("create node");
        let cidr = node.spec.and_then(|s| s.pod_cidr);
        assert_eq!(cidr, Some(format!("10.42.{i}.0/24")));
    }
    let pods: Api<Pod> = Api::namespaced(client, "default");
    pods.create(&PostParams::default(), &pod("bound", Some("node-1")))
        .await
        .expect("create");
    pods.delete("bound", &DeleteParams::default())
        .await
        .expect("graceful delete");
    let still = pods
        .get("bound")
        .await
        .expect("pod stays during its grace period");
    assert!(still.metadata.deletion_timestamp.is_some());
    pods.delete(
        "bound",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        },
    )
    .await
    .expect("final delete");
    assert!(pods.get_opt("bound").await.expect("get_opt").is_none());
}

#[tokio::test]
async fn watcher_and_reflector_see_changes() {
    let client = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector(
        writer,
        watcher(cms.clone(), watcher::Config::default().labels("team=net")),
    )
    .applied_objects()
    .map_ok(|cm| cm.metadata.name.unwrap_or_default());
    let (tx, mut names) = tokio::sync::mpsc::unbounded_channel();
    // The reflector only progresses while its stream is polled.
    tokio::spawn(async move {
        let mut stream = Box::pin(stream);
        while let Ok(Some(name)) = stream.try_next().await {
            let _ = tx.send(name);
        }
    });
    tokio::time::timeout(Duration::from_secs(5), reader.wait_until_ready())
        .await
        .expect("ready in time")
        .expect("ready");

    let labelled: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "seen", "labels": {"team": "net"}}}))
            .expect("cm");
    let other: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "unseen"}})).expect("cm");
    cms.create(&PostParams::default(), &other)
        .await
        .expect("create other");
    cms.create(&PostParams::default(), &labelled)
        .await
        .expect("create labelled");
    let next = tokio::time::timeout(Duration::from_secs(5), names.recv())
        .await
        .expect("event in time");
    assert_eq!(next.as_deref(), Some("seen"));
    assert_eq!(reader.state().len(), 1);

    // Removing the label makes the object leave the selection: the store drops it.
    let unlabel = json!({"metadata": {"labels": {"team": null}}});
    cms.patch("seen", &PatchParams::default(), &Patch::Merge(&unlabel))
        .await
        .expect("patch");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !reader.state().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        reader.state().is_empty(),
        "object that stopped matching must leave the store"
    );
}

#[tokio::test]
async fn server_side_apply_creates_then_merges() {
    let client = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let params = PatchParams::apply("lab-test");
    let first = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1"}});
    cms.patch("ssa", &params, &Patch::Apply(&first))
        .await
        .expect("apply creates");
    let second = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"b": "2"}});
    let cm = cms
        .patch("ssa", &params, &Patch::Apply(&second))
        .await
        .expect("apply merges");
    let data = cm.data.expect("data");
    assert_eq!(
        (
            data.get("a").map(String::as_str),
            data.get("b").map(String::as_str)
        ),
        (Some("1"), Some("2"))
    );
}

#[tokio::test]
async fn paginated_list_returns_every_item_once() {
    let client = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..7 {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("cm-{i}")}})).expect("cm");
        cms.create(&PostParams::default(), &cm)
            .await
            .expect("create");
    }
    let mut names = Vec::new();
    let mut params = ListParams::default().limit(3);
    loop {
        let page = cms.list(&params).await.expect("list page");
        assert!(page.items.len() <= 3);
        names.extend(page.items.into_iter().filter_map(|c| c.metadata.name));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    let expected: Vec<String> = (0..7).map(|i| format!("cm-{i}")).collect();
    assert_eq!(names, expected);
}
