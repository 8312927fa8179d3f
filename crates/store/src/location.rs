//! Locations → object stores.
//!
//! | location | store |
//! |---|---|
//! | `/data/orders`, `./orders`, `file:///data/orders` | `LocalFileSystem` rooted at the folder (a target's is created when first written; a missing source folder is an error) |
//! | `memory://name/prefix` | a process-wide `InMemory` store per `name` (tests, demos) |
//! | `s3://bucket/prefix` | `AmazonS3` (feature `aws`), configured from the `AWS_*` environment |
//! | `gs://bucket/prefix` | Google Cloud Storage (feature `gcp`), from the `GOOGLE_*` environment |
//! | `az://container/prefix` | Azure Blob Storage (feature `azure`), from the `AZURE_*` environment |

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use url::Url;

use crate::error::{Error, Result};

/// The `InMemory` stores of `memory://` locations, by name.
static MEMORY_STORES: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();

/// The store and the root path within it for a location.
pub fn store_for(location: &str) -> Result<(Arc<dyn ObjectStore>, Path)> {
    let (store, root) = open(location)?;
    #[cfg(feature = "crash-points")]
    let store = crate::crash_points::wrap(store);
    Ok((store, root))
}

fn open(location: &str) -> Result<(Arc<dyn ObjectStore>, Path)> {
    let invalid = |reason: String| Error::InvalidLocation { location: location.to_owned(), reason };
    let url = match Url::parse(location) {
        Ok(url) if url.scheme().len() > 1 => url,
        // A plain path (or a Windows drive letter, which parses as a one-letter scheme).
        _ => return local(location, std::path::Path::new(location)),
    };
    let prefix = || Path::from_url_path(url.path()).map_err(|e| invalid(e.to_string()));
    match url.scheme() {
        "file" => {
            let path = url.to_file_path().map_err(|()| invalid("not a local file path".into()))?;
            local(location, &path)
        }
        "memory" => {
            let name = url.host_str().unwrap_or_default().to_owned();
            let mut stores = MEMORY_STORES
                .get_or_init(Mutex::default)
                .lock()
                .map_err(|_| invalid("store registry poisoned".into()))?;
            let store = Arc::clone(stores.entry(name).or_insert_with(|| Arc::new(InMemory::new())));
            Ok((store, prefix()?))
        }
        #[cfg(feature = "aws")]
        "s3" | "s3a" => {
            let store = object_store::aws::AmazonS3Builder::from_env()
                .with_url(location)
                .build()
                .map_err(|e| invalid(e.to_string()))?;
            Ok((Arc::new(store), prefix()?))
        }
        #[cfg(feature = "gcp")]
        "gs" => {
            let store = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(location)
                .build()
                .map_err(|e| invalid(e.to_string()))?;
            Ok((Arc::new(store), prefix()?))
        }
        #[cfg(feature = "azure")]
        "az" | "abfs" | "abfss" | "azure" => {
            let store = object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(location)
                .build()
                .map_err(|e| invalid(e.to_string()))?;
            Ok((Arc::new(store), prefix()?))
        }
        other => Err(invalid(match missing_feature(other) {
            Some(feature) => format!("this build has no `{other}` support: enable highwater's `{feature}` feature"),
            None => format!("unsupported scheme `{other}`"),
        })),
    }
}

/// The cargo feature a cloud scheme needs, when this build lacks it.
fn missing_feature(scheme: &str) -> Option<&'static str> {
    match scheme {
        "s3" | "s3a" if cfg!(not(feature = "aws")) => Some("aws"),
        "gs" if cfg!(not(feature = "gcp")) => Some("gcp"),
        "az" | "abfs" | "abfss" | "azure" if cfg!(not(feature = "azure")) => Some("azure"),
        _ => None,
    }
}

/// Whether the location is a local folder that does not exist (opening it for writing would
/// create it; reading it is a typo or a missing mount, never an empty source).
pub(crate) fn is_missing_local_folder(location: &str) -> bool {
    folder_path(location).is_some_and(|folder| !folder.exists())
}

/// The local folder of a location, when it is one (`file://` or a plain path).
pub(crate) fn local_folder(location: &str) -> Option<std::path::PathBuf> {
    folder_path(location).and_then(|folder| folder.canonicalize().ok())
}

/// The path a `file://` URL or a plain path names, whether or not it exists.
fn folder_path(location: &str) -> Option<std::path::PathBuf> {
    match Url::parse(location) {
        Ok(url) if url.scheme() == "file" => url.to_file_path().ok(),
        Ok(url) if url.scheme().len() > 1 => None,
        _ => Some(std::path::PathBuf::from(location)),
    }
}

/// A local folder (created if missing) as a store rooted there.
fn local(location: &str, folder: &std::path::Path) -> Result<(Arc<dyn ObjectStore>, Path)> {
    let invalid = |reason: String| Error::InvalidLocation { location: location.to_owned(), reason };
    std::fs::create_dir_all(folder).map_err(|e| invalid(format!("cannot create the folder: {e}")))?;
    let folder = folder.canonicalize().map_err(|e| invalid(e.to_string()))?;
    let store =
        LocalFileSystem::new_with_prefix(&folder).map_err(|e| invalid(e.to_string()))?.with_automatic_cleanup(true);
    Ok((Arc::new(store), Path::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("a/b");
        let (_, root) = store_for(plain.to_str().unwrap()).unwrap();
        assert!(plain.is_dir() && root.as_ref().is_empty());
        let url = format!("file://{}", plain.display());
        assert!(store_for(&url).is_ok());
        let (first, root) = store_for("memory://shared/tables/orders").unwrap();
        let (second, _) = store_for("memory://shared/other").unwrap();
        assert_eq!(root.as_ref(), "tables/orders");
        assert!(Arc::ptr_eq(&first, &second), "one store per memory:// name");
        let error = store_for("ftp://host/x").unwrap_err();
        assert!(error.to_string().contains("unsupported scheme"), "{error}");
    }

    #[test]
    fn a_cloud_location_opens_or_names_the_feature_it_needs() {
        for (location, feature, enabled) in [
            ("s3://bucket/tables/orders", "aws", cfg!(feature = "aws")),
            ("gs://bucket/tables/orders", "gcp", cfg!(feature = "gcp")),
            ("abfss://container@account.dfs.core.windows.net/tables/orders", "azure", cfg!(feature = "azure")),
        ] {
            // Builders read credentials lazily: opening needs no network and no environment (Azure
            // needs its account, here in the URL).
            match store_for(location) {
                Ok((_, root)) => assert!(enabled && root.as_ref() == "tables/orders", "{location}"),
                Err(error) => {
                    assert!(!enabled, "{location}: {error}");
                    assert!(error.to_string().contains(&format!("`{feature}` feature")), "{error}");
                }
            }
        }
    }
}
