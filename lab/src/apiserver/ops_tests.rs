//! Unit tests of the verbs: create defaults, optimistic concurrency, status
//! subresource, finalizers, graceful pods, namespaces and owner GC.

use serde_json::{Value, json};

use super::*;
use crate::apiserver::ApiServerConfig;
use crate::apiserver::resources::lookup;
use crate::apiserver::store::Store;

fn r(plural: &str) -> &'static ResourceType {
    lookup("", "v1", plural).expect("registered")
}

fn cm(name: &str, extra: Value) -> Value {
    let mut obj = json!({"metadata": {"name": name}, "data": {"k": "v"}});
    json_patch::merge(&mut obj, &extra);
    obj
}

fn exists(state: &State, res: &ResourceType, ns: &str, name: &str) -> bool {
    get(state, res, ns, name).is_ok()
}

#[test]
fn create_fills_metadata_and_rejects_duplicates() {
    let store = Store::new(ApiServerConfig::default());
    let mut s = store.lock();
    let obj = create(&mut s, r("configmaps"), "default", cm("a", json!({}))).expect("create");
    assert_eq!(obj["kind"], "ConfigMap");
    assert_eq!(obj["metadata"]["namespace"], "default");
    assert_eq!(obj["metadata"]["generation"], 1);
    assert!(
        obj["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| u.len() == 36)
    );
    let dup = create(&mut s, r("configmaps"), "default", cm("a", json!({})));
    assert_eq!(dup.map_err(|e| e.code()), Err(409));
    let gen_named = create(
        &mut s,
        r("configmaps"),
        "default",
        json!({"metadata": {"generateName": "x-"}}),
    )
    .expect("generateName");
    assert!(meta::name(&gen_named).starts_with("x-") && meta::name(&gen_named).len() == 7);
    let nameless = create(&mut s, r("configmaps"), "default", json!({"metadata": {}}));
    assert_eq!(nameless.map_err(|e| e.code()), Err(422));
    let no_ns = create(&mut s, r("configmaps"), "nope", cm("b", json!({})));
    assert_eq!(no_ns.map_err(|e| e.code()), Err(404));
    let wrong_kind = create(
        &mut s,
        r("configmaps"),
        "default",
        json!({"kind": "Secret", "metadata": {"name": "c"}}),
    );
    assert_eq!(wrong_kind.map_err(|e| e.code()), Err(400));
}

#[test]
fn update_checks_resource_version_and_bumps_generation() {
    let store = Store::new(ApiServerConfig::default());
    let mut s = store.lock();
    let pods = r("pods");
    let pod =
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}});
    let v1 = create(&mut s, pods, "default", pod).expect("create");
    let mut changed = v1.clone();
    changed["spec"]["containers"][0]["image"] = json!("i:2");
    changed["status"]["phase"] = json!("Running");
    let v2 = update(&mut s, pods, "default", "p", changed, Part::Main).expect("update");
    assert_eq!(v2["metadata"]["generation"], 2);
    assert_eq!(
        v2["status"]["phase"], "Pending",
        "main resource must not change status"
    );
    let stale = update(&mut s, pods, "default", "p", v1.clone(), Part::Main);
    assert!(matches!(stale, Err(ApiError::Conflict { .. })));

    let mut status = v2.clone();
    status["status"]["phase"] = json!("Running");
    status["spec"]["containers"][0]["image"] = json!("ignored");
    let v3 = update(&mut s, pods, "default", "p", status, Part::Status).expect("status update");
    assert_eq!(v3["status"]["phase"], "Running");
    assert_eq!(
        v3["spec"]["containers"][0]["image"], "i:2",
        "/status must not change spec"
    );
    assert_eq!(v3["metadata"]["generation"], 2);

    let same = update(&mut s, pods, "default", "p", v3.clone(), Part::Main).expect("no-op");
    assert_eq!(
        same["metadata"]["resourceVersion"], v3["metadata"]["resourceVersion"],
        "no-op keeps rv"
    );
}

#[test]
fn finalizers_hold_deletion_until_removed() {
    let store = Store::new(ApiServerConfig::default());
    let mut s = store.lock();
    let cms = r("configmaps");
    create(
        &mut s,
        cms,
        "default",
        cm(
            "f",
            json!({"metadata": {"finalizers": ["example.com/hold"]}}),
        ),
    )
    .expect("create");
    let marked = delete(&mut s, cms, "default", "f", &DeleteOptions::default()).expect("delete");
    assert!(meta::is_deleting(&marked));
    assert!(exists(&s, cms, "default", "f"));
    let mut release = marked.clone();
    release["metadata"]["finalizers"] = json!([]);
    update(&mut s, cms, "default", "f", release, Part::Main).expect("remove finalizer");
    assert!(!exists(&s, cms, "default", "f"));
}

#[test]
fn bound_pods_wait_for_grace_zero_and_unbound_go_at_once() {
    let store = Store::new(ApiServerConfig::default());
    let mut s = store.lock();
    let (pods, nodes) = (r("pods"), r("nodes"));
    create(&mut s, nodes, "", json!({"metadata": {"name": "node-1"}})).expect("node");
    let bound =
        json!({"metadata": {"name": "b"}, "spec": {"nodeName": "node-1", "containers": []}});
    create(&mut s, pods, "default", bound).expect("pod");
    create(
        &mut s,
        pods,
        "default",
        json!({"metadata": {"name": "u"}, "spec": {"containers": []}}),
    )
    .expect("pod");
    delete(&mut s, pods, "default", "u", &DeleteOptions::default()).expect("delete unbound");
    assert!(!exists(&s, pods, "default", "u"));
    let marked =
        delete(&mut s, pods, "default", "b", &DeleteOptions::default()).expect("delete bound");
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 30);
    assert!(exists(&s, pods, "default", "b"));
    let now = DeleteOptions {
        grace_period: Some(0),
        ..DeleteOptions::default()
    };
    delete(&mut s, pods, "default", "b", &now).expect("kubelet delete");
    assert!(!exists(&s, pods, "default", "b"));
}

#[test]
fn owner_deletion_collects_dependents_or_orphans_them() {
    let store = Store::new(ApiServerConfig::default());
    let mut s = store.lock();
    let cms = r("configmaps");
    let owner = create(&mut s, cms, "default", cm("owner", json!({}))).expect("owner");
    let refs = json!({"metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": meta::uid(&owner)}]}});
    create(&mut s, cms, "default", cm("child", refs.clone())).expect("child");
    let child_ref = |uid: &str| json!({"metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "child", "uid": uid}]}});
    let child = get(&s, cms, "default", "child").expect("child");
    create(
        &mut s,
        cms,
        "default",
        cm("grandchild", child_ref(meta::uid(&child))),
    )
    .expect("grandchild");
    delete(&mut s, cms, "default", "owner", &DeleteOptions::default()).expect("delete owner");
    assert!(
        !exists(&s, cms, "default", "child") && !exists(&s, cms, "default", "grandchild"),
        "cascade"
    );

    let owner = create(&mut s, cms, "default", cm("owner2", json!({}))).expect("owner2");
    create(
        &mut s,
        cms,
        "default",
        cm("kept", child_ref(meta::uid(&owner))),
    )
    .expect("dependent");
    let orphan = DeleteOptions {
        propagation: Propagation::Orphan,
        ..DeleteOptions::default()
    };
    delete(&mut s, cms, "default", "owner2", &orphan).expect("delete orphaning");
    let kept = get(&s, cms, "default", "kept").expect("orphaned dependent stays");
    assert!(meta::owner_uids(&kept).is_empty());
}

#[test]
fn thousands_of_dependents_go_with_their_owner() {
    let store = Store::new(ApiServerConfig::default());
    let mut s = store.lock();
    let cms = r("configmaps");
    let owner = create(&mut s, cms, "default", cm("owner", json!({}))).expect("owner");
    let refs = json!({"metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": meta::uid(&owner)}]}});
    for i in 0..5000 {
        let name = format!("dep-{i}");
        create(&mut s, cms, "default", cm(&name, refs.clone())).expect("dependent");
    }
    delete(&mut s, cms, "default", "owner", &DeleteOptions::default()).expect("delete owner");
    let left = (0..5000)
        .filter(|i| exists(&s, cms, "default", &format!("dep-{i}")))
        .count();
    assert_eq!(left, 0, "dependents left behind");
}

#[test]
fn namespace_deletion_removes_content_then_itself() {
    let store = Store::new(ApiServerConfig::default());
    let mut s = store.lock();
    let (nss, cms) = (r("namespaces"), r("configmaps"));
    create(&mut s, nss, "", json!({"metadata": {"name": "team"}})).expect("ns");
    create(
        &mut s,
        cms,
        "team",
        cm("a", json!({"metadata": {"finalizers": ["x/y"]}})),
    )
    .expect("cm");
    create(&mut s, cms, "team", cm("b", json!({}))).expect("cm");
    let ns = delete(&mut s, nss, "", "team", &DeleteOptions::default()).expect("delete ns");
    assert_eq!(ns["status"]["phase"], "Terminating");
    assert!(!exists(&s, cms, "team", "b") && exists(&s, cms, "team", "a"));
    let refused = create(&mut s, cms, "team", cm("c", json!({})));
    assert_eq!(refused.map_err(|e| e.code()), Err(403));
    let mut a = get(&s, cms, "team", "a").expect("a");
    a["metadata"]["finalizers"] = json!([]);
    update(&mut s, cms, "team", "a", a, Part::Main).expect("release");
    assert!(
        !exists(&s, nss, "", "team"),
        "empty terminating namespace is removed"
    );
}

#[test]
fn list_pages_with_continue_and_selectors() {
    let store = Store::new(ApiServerConfig::default());
    let mut s = store.lock();
    let cms = r("configmaps");
    for i in 0..5 {
        create(
            &mut s,
            cms,
            "default",
            cm(
                &format!("c{i}"),
                json!({"metadata": {"labels": {"odd": (i % 2).to_string()}}}),
            ),
        )
        .expect("cm");
    }
    let mut opts = ListOptions {
        limit: Some(2),
        labels: LabelSelector::parse("odd=0").expect("sel"),
        ..ListOptions::default()
    };
    let page = list(&s, cms, Some("default"), &opts).expect("page 1");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(page["metadata"]["remainingItemCount"], 1);
    opts.continue_token = page["metadata"]["continue"].as_str().map(str::to_string);
    let page = list(&s, cms, Some("default"), &opts).expect("page 2");
    assert_eq!(page["items"][0]["metadata"]["name"], "c4");
    assert!(page["metadata"].get("continue").is_none());
    opts.continue_token = Some("zz".into());
    assert_eq!(list(&s, cms, None, &opts).map_err(|e| e.code()), Err(400));
}
