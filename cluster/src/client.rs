//! Building the one `kube::Client` the daemon shares between components.

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Why no API client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The file given with --kubeconfig could not be read or parsed.
    #[error("cannot read kubeconfig {path}: {source}")]
    ReadKubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// Neither the in-cluster service account nor a default kubeconfig
    /// (KUBECONFIG or ~/.kube/config) is usable.
    #[error(
        "no API server configuration: not in a cluster ({incluster}) and no default kubeconfig ({kubeconfig}); pass --kubeconfig"
    )]
    NoConfig {
        incluster: kube::config::InClusterError,
        kubeconfig: kube::config::KubeconfigError,
    },
    /// The configuration was found but a client could not be built from it.
    #[error("cannot build the API client: {0}")]
    Build(#[source] kube::Error),
}

/// The client for `--kubeconfig` if given, else the in-cluster service
/// account, else the default kubeconfig (as K3s's agent and kubectl look).
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, ClientError> {
    let config = match kubeconfig {
        Some(path) => from_file(path).await?,
        None => inferred().await?,
    };
    Client::try_from(config).map_err(ClientError::Build)
}

async fn from_file(path: &Path) -> Result<Config, ClientError> {
    let read_err = |source| ClientError::ReadKubeconfig {
        path: path.to_path_buf(),
        source,
    };
    let file = Kubeconfig::read_from(path).map_err(read_err)?;
    Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .map_err(read_err)
}

async fn inferred() -> Result<Config, ClientError> {
    let incluster = match Config::incluster() {
        Ok(config) => return Ok(config),
        Err(err) => err,
    };
    Config::from_kubeconfig(&KubeConfigOptions::default())
        .await
        .map_err(|kubeconfig| ClientError::NoConfig {
            incluster,
            kubeconfig,
        })
}
