//! Driver selection through the binary: the default, the registry's config.yml, and the
//! registry's environment overrides winning over it.

mod common;

use std::path::Path;

use common::{command, run};
use serde_json::{Value, json};

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The storage section of the Go registry's sample configuration for the filesystem driver,
/// rooted at `root`, with the keys that are not the driver's.
fn filesystem_config(root: &Path) -> String {
    format!(
        "version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: {}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: true
      age: 168h
      interval: 24h
      dryrun: false
  redirect:
    disable: true
  tag:
    concurrencylimit: 8
http:
  addr: :5000
",
        root.display()
    )
}

#[test]
fn nothing_given_is_the_filesystem_driver_under_registry_data() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let mut put = command();
    put.current_dir(cwd.path()).args(["put", "/hello"]);
    run(put, b"world").ok();
    assert_eq!(
        std::fs::read(cwd.path().join("registry-data/hello")).expect("under ./registry-data"),
        b"world"
    );
    let mut ls = command();
    ls.current_dir(cwd.path()).arg("ls");
    assert_eq!(run(ls, b"").ok(), "/hello\n");
}

#[test]
fn config_yml_selects_the_driver_and_an_environment_override_wins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file_root = dir.path().join("from-file");
    let env_root = dir.path().join("from-env");
    let config = dir.path().join("config.yml");
    std::fs::write(&config, filesystem_config(&file_root)).expect("write");

    let mut put = command();
    put.args(["--config", config.to_str().expect("utf-8"), "put", "/a"]);
    run(put, b"file").ok();
    assert_eq!(
        std::fs::read(file_root.join("a")).expect("in the file's root"),
        b"file"
    );

    let mut put = command();
    put.env("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", &env_root)
        .args(["--config", config.to_str().expect("utf-8"), "put", "/b"]);
    run(put, b"env").ok();
    assert_eq!(
        std::fs::read(env_root.join("b")).expect("in the environment's root"),
        b"env"
    );
    assert!(
        !file_root.join("b").exists(),
        "the environment won over the file"
    );

    // REGISTRY_CONFIGURATION_PATH names the file when --config does not.
    let mut ls = command();
    ls.env("REGISTRY_CONFIGURATION_PATH", &config).arg("ls");
    assert_eq!(run(ls, b"").ok(), "/a\n");
}

#[test]
fn s3_sample_with_overrides_shown_without_connecting() {
    let shown = driver_json(
        include_str!("fixtures/s3.yml"),
        &[
            ("REGISTRY_STORAGE_S3_REGION", "eu-central-1"),
            ("REGISTRY_STORAGE_S3_SESSIONTOKEN", "tok"),
            ("REGISTRY_STORAGE_DELETE_ENABLED", "false"),
        ],
    );
    assert_eq!(shown["driver"], "s3");
    assert_eq!(shown["builtin"], true);
    let params = &shown["parameters"];
    assert_eq!(params["region"], "eu-central-1", "the environment wins");
    assert_eq!(params["bucket"], "bucketname");
    assert_eq!(
        params["chunksize"], 5242880,
        "a YAML integer stays a number"
    );
    assert_eq!(params["forcepathstyle"], true);
    assert_eq!(params["secretkey"], "********");
    assert_eq!(params["sessiontoken"], "********");
    assert_eq!(params["accesskey"], "awsaccesskey");
    assert!(params.get("delete").is_none() && params.get("cache").is_none());
    let source = shown["source"].as_str().expect("source");
    assert!(
        source.contains("REGISTRY_STORAGE_S3_REGION") && !source.contains("DELETE"),
        "{source}"
    );
}

#[test]
fn azure_sample_nests_credentials_and_the_environment_reaches_into_them() {
    let shown = driver_json(
        include_str!("fixtures/azure.yml"),
        &[
            (
                "REGISTRY_STORAGE_AZURE_CREDENTIALS_TYPE",
                "default_credentials",
            ),
            ("REGISTRY_STORAGE_AZURE_CONTAINER", "other"),
        ],
    );
    assert_eq!(shown["driver"], "azure");
    assert_eq!(
        shown["parameters"],
        json!({
            "accountname": "accountname",
            "accountkey": "********",
            "container": "other",
            "realm": "core.windows.net",
            "rootdirectory": "/az/object/name/prefix",
            "credentials": {
                "type": "default_credentials",
                "clientid": "client_id_string",
                "tenantid": "tenant_id_string",
                "secret": "********",
            },
        })
    );
}

#[test]
fn registry_storage_alone_selects_a_driver() {
    let mut ls = command();
    ls.env("REGISTRY_STORAGE", "inmemory")
        .args(["ls", "-R", "/"]);
    assert_eq!(run(ls, b"").ok(), "");
    let mut show = command();
    show.env("REGISTRY_STORAGE", "inmemory").arg("driver");
    let text = run(show, b"").ok();
    assert!(
        text.starts_with("driver      inmemory (built in)\n"),
        "{text}"
    );
    assert!(
        text.contains("source      environment REGISTRY_STORAGE\n"),
        "{text}"
    );
}

#[test]
fn bad_configurations_are_2_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.yml");
    let path = config.to_str().expect("utf-8");

    std::fs::write(&config, "storage:\n  s3:\n    bucket: [unclosed\n").expect("write");
    let mut cmd = command();
    cmd.args(["--config", path, "ls"]);
    run(cmd, b"").fails(2, &[path, "line "]);

    std::fs::write(&config, "version: 0.1\nhttp:\n  addr: :5000\n").expect("write");
    let mut cmd = command();
    cmd.args(["--config", path, "ls"]);
    run(cmd, b"").fails(2, &[path, "names no storage driver"]);

    std::fs::write(&config, filesystem_config(dir.path())).expect("write");
    let mut cmd = command();
    cmd.env("REGISTRY_STORAGE_S3_BUCKET", "b")
        .args(["--config", path, "ls"]);
    run(cmd, b"").fails(2, &["more than one storage driver: filesystem, s3"]);

    let mut cmd = command();
    cmd.args(["--config", "/no/such/config.yml", "ls"]);
    run(cmd, b"").fails(2, &["/no/such/config.yml"]);
}

/// `registry-storage --config <yaml> driver --json` with `env` set: the selection it shows.
fn driver_json(yaml: &str, env: &[(&str, &str)]) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.yml");
    std::fs::write(&config, yaml).expect("write");
    let mut show = command();
    show.envs(env.iter().copied()).args([
        "--config",
        config.to_str().expect("utf-8"),
        "driver",
        "--json",
    ]);
    json(&run(show, b"").ok())
}
